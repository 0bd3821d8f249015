//! The price book: per-model token prices with effective dates, and cost per span.
//!
//! The default book (`prices.json` in this crate) is compiled in, so pricing never needs the
//! network; a user file of the same shape replaces or adds models. A model name matches an
//! entry exactly, or as a dated or suffixed variant of it (`gpt-4o-mini-2024-07-18` →
//! `gpt-4o-mini`, `openai/gpt-4o` → `gpt-4o`), the longest entry winning.

use serde::{Deserialize, Serialize};

use crate::normalize::Derived;

/// The price book compiled into Loupe.
pub const DEFAULT_PRICES: &str = include_str!("../prices.json");

/// Prices of one model from one date on, in US dollars per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// First day these prices apply (`YYYY-MM-DD`, UTC).
    pub effective: String,
    /// Input tokens.
    pub input: f64,
    /// Output tokens (reasoning included unless `reasoning` is set).
    pub output: f64,
    /// Input tokens read from a prompt cache (default: the input price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    /// Input tokens written to a prompt cache (default: the input price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// Reasoning tokens (default: the output price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<f64>,
}

/// All prices of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPrices {
    /// Model name as providers report it.
    pub model: String,
    /// Provider.
    #[serde(default)]
    pub provider: String,
    /// Prices by effective date.
    pub prices: Vec<Price>,
}

/// A price book.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceBook {
    /// Version of the book (a date).
    pub version: String,
    /// Models.
    pub models: Vec<ModelPrices>,
}

/// Why a price file was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid price book: {0}")]
pub struct PriceError(String);

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
fn days_from_date(date: &str) -> Option<i64> {
    let mut it = date.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(crate::days_from_civil(y, m, d))
}

impl PriceBook {
    /// The compiled-in book.
    pub fn builtin() -> Self {
        // The file is part of the source tree and checked by a test.
        Self::parse(DEFAULT_PRICES).unwrap_or(PriceBook {
            version: String::new(),
            models: Vec::new(),
        })
    }

    /// Parses and validates a book.
    pub fn parse(json: &str) -> Result<Self, PriceError> {
        let mut book: PriceBook =
            serde_json::from_str(json).map_err(|e| PriceError(e.to_string()))?;
        for m in &mut book.models {
            if m.model.trim().is_empty() {
                return Err(PriceError("a model has an empty name".into()));
            }
            for p in &m.prices {
                if days_from_date(&p.effective).is_none() {
                    return Err(PriceError(format!(
                        "{}: effective date {:?} is not YYYY-MM-DD",
                        m.model, p.effective
                    )));
                }
                let all = [
                    Some(p.input),
                    Some(p.output),
                    p.cached_input,
                    p.cache_write,
                    p.reasoning,
                ];
                if all.iter().flatten().any(|v| !v.is_finite() || *v < 0.0) {
                    return Err(PriceError(format!(
                        "{}: prices must be non-negative numbers",
                        m.model
                    )));
                }
            }
            m.prices
                .sort_by_key(|p| days_from_date(&p.effective).unwrap_or(0));
        }
        Ok(book)
    }

    /// This book with `overrides` on top: a model in both takes the override's prices.
    pub fn merged(mut self, overrides: PriceBook) -> Self {
        for o in overrides.models {
            match self.models.iter_mut().find(|m| m.model == o.model) {
                Some(m) => *m = o,
                None => self.models.push(o),
            }
        }
        self.version = format!("{}+{}", self.version, overrides.version);
        self
    }

    /// The entry for a model name, exact or as a variant.
    pub fn lookup(&self, model: &str) -> Option<&ModelPrices> {
        // Case-insensitive, without allocating: this runs for every LLM span ingested.
        let model = model.rsplit('/').next().unwrap_or(model).as_bytes();
        let mut best: Option<&ModelPrices> = None;
        for m in &self.models {
            let name = m.model.as_bytes();
            let hit = model.len() >= name.len()
                && model[..name.len()].eq_ignore_ascii_case(name)
                && model
                    .get(name.len())
                    .is_none_or(|c| matches!(c, b'-' | b'@' | b':'));
            if hit && best.is_none_or(|b| b.model.len() < m.model.len()) {
                best = Some(m);
            }
        }
        best
    }

    /// The prices in force for `model` at `at_ns` (ns since the epoch); the earliest known
    /// prices for times before the first effective date.
    pub fn price_at(&self, model: &str, at_ns: u64) -> Option<&Price> {
        let entry = self.lookup(model)?;
        let day = i64::try_from(at_ns / 86_400_000_000_000).unwrap_or(i64::MAX);
        entry
            .prices
            .iter()
            .rev()
            .find(|p| days_from_date(&p.effective).is_some_and(|d| d <= day))
            .or_else(|| entry.prices.first())
    }

    /// A span's canonical fields from its attributes, priced as of its start: the one way every
    /// door (OTLP, MLflow's `traces.json`, `loupe reindex`) derives a span.
    pub fn derive(
        &self,
        attributes: &serde_json::Map<String, serde_json::Value>,
        start_ns: u64,
    ) -> Derived {
        let mut d = crate::normalize::derive(attributes);
        d.cost_usd = self.cost(&d, start_ns);
        d
    }

    /// Cost in US dollars of a span's token usage, or `None` without a model, usage or price.
    pub fn cost(&self, d: &Derived, at_ns: u64) -> Option<f64> {
        self.cost_parts(d, at_ns).map(|(i, o)| i + o)
    }

    /// The cost split into the input side (including cache reads and writes) and the output
    /// side (including reasoning), US dollars.
    pub fn cost_parts(&self, d: &Derived, at_ns: u64) -> Option<(f64, f64)> {
        let model = d.response_model.as_deref().or(d.request_model.as_deref())?;
        let price = self.price_at(model, at_ns).or_else(|| {
            d.request_model
                .as_deref()
                .and_then(|m| self.price_at(m, at_ns))
        })?;
        if d.input_tokens.is_none() && d.output_tokens.is_none() {
            return None;
        }
        let input = d.input_tokens.unwrap_or(0) as f64;
        let output = d.output_tokens.unwrap_or(0) as f64;
        let cached = (d.cache_read_tokens.unwrap_or(0) as f64).min(input);
        let written = (d.cache_write_tokens.unwrap_or(0) as f64).min(input - cached);
        let reasoning = (d.reasoning_tokens.unwrap_or(0) as f64).min(output);
        let per = 1e-6;
        let input_cost = (input - cached - written) * price.input * per
            + cached * price.cached_input.unwrap_or(price.input) * per
            + written * price.cache_write.unwrap_or(price.input) * per;
        let output_cost = match price.reasoning {
            Some(r) => (output - reasoning) * price.output * per + reasoning * r * per,
            None => output * price.output * per,
        };
        Some((input_cost, output_cost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derived(model: &str, i: u64, o: u64) -> Derived {
        Derived {
            request_model: Some(model.into()),
            input_tokens: Some(i),
            output_tokens: Some(o),
            ..Derived::default()
        }
    }

    const NOV_2025: u64 = 1_763_000_000_000_000_000;

    #[test]
    fn builtin_book_is_valid() {
        let book = PriceBook::parse(DEFAULT_PRICES).unwrap();
        assert!(book.models.len() > 20);
        assert_eq!(PriceBook::builtin(), book);
    }

    #[test]
    fn cost_and_variants() {
        let book = PriceBook::builtin();
        let c = book
            .cost(&derived("gpt-4o-mini", 1_000_000, 1_000_000), NOV_2025)
            .unwrap();
        assert!((c - 0.75).abs() < 1e-12, "{c}");
        let c = book
            .cost(&derived("gpt-4o-mini-2024-07-18", 11, 7), NOV_2025)
            .unwrap();
        assert!((c - (11.0 * 0.15e-6 + 7.0 * 0.6e-6)).abs() < 1e-15);
        assert_eq!(book.lookup("openai/gpt-4o").unwrap().model, "gpt-4o");
        assert_eq!(book.lookup("gpt-4o-2024-08-06").unwrap().model, "gpt-4o");
        assert_eq!(
            book.lookup("gpt-4.1-mini-2025-04-14").unwrap().model,
            "gpt-4.1-mini"
        );
        assert!(book.lookup("gpt-4oo").is_none());
        assert!(
            book.cost(&derived("my-local-llama", 10, 10), NOV_2025)
                .is_none()
        );
        let no_usage = Derived {
            request_model: Some("gpt-4o".into()),
            ..Derived::default()
        };
        assert!(book.cost(&no_usage, NOV_2025).is_none());
    }

    #[test]
    fn effective_dates_and_cache() {
        let book = PriceBook::builtin();
        let june_2024 = 1_718_000_000_000_000_000;
        let c = book
            .cost(&derived("gpt-4o", 1_000_000, 0), june_2024)
            .unwrap();
        assert!((c - 5.0).abs() < 1e-9, "old price before 2024-10-01: {c}");
        let c = book
            .cost(&derived("gpt-4o", 1_000_000, 0), NOV_2025)
            .unwrap();
        assert!((c - 2.5).abs() < 1e-9, "{c}");
        let mut d = derived("gpt-4o", 1_000_000, 0);
        d.cache_read_tokens = Some(500_000);
        let c = book.cost(&d, NOV_2025).unwrap();
        assert!((c - (1.25 + 0.625)).abs() < 1e-9, "{c}");
    }

    #[test]
    fn overrides_and_validation() {
        let user = PriceBook::parse(r#"{"version": "mine", "models": [
            {"model": "gpt-4o-mini", "prices": [{"effective": "2020-01-01", "input": 1.0, "output": 2.0}]},
            {"model": "my-llama", "prices": [{"effective": "2020-01-01", "input": 0.0, "output": 0.0}]}]}"#).unwrap();
        let book = PriceBook::builtin().merged(user);
        let c = book
            .cost(&derived("gpt-4o-mini", 1_000_000, 1_000_000), NOV_2025)
            .unwrap();
        assert!((c - 3.0).abs() < 1e-9);
        assert_eq!(book.cost(&derived("my-llama", 5, 5), NOV_2025), Some(0.0));
        for bad in [
            r#"{"version": "x", "models": [{"model": "m", "prices": [{"effective": "soon", "input": 1, "output": 1}]}]}"#,
            r#"{"version": "x", "models": [{"model": "m", "prices": [{"effective": "2024-01-01", "input": -1, "output": 1}]}]}"#,
            r#"{"version": "x", "models": [{"model": " ", "prices": []}]}"#,
            "not json",
        ] {
            assert!(PriceBook::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(days_from_date("1970-01-01"), Some(0));
        assert_eq!(days_from_date("2024-03-01"), Some(19_783));
    }
}
