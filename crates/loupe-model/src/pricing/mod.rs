//! The price book: per-model token prices with effective dates, and cost per span.
//!
//! The default book (`prices.json` in this crate) is compiled in, so pricing never needs the
//! network; a user file of the same shape replaces or adds models. How the names clients send
//! resolve to the book's entries is in [`names`].

mod lint;
pub mod names;

pub use lint::MIN_MODELS;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::days_from_date;
use crate::normalize::Derived;

/// The price book compiled into Loupe.
pub const DEFAULT_PRICES: &str = include_str!("../../prices.json");

/// Prices per million tokens of each kind, US dollars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenPrices {
    /// Input tokens.
    pub input: f64,
    /// Output tokens (reasoning included unless `reasoning` is set).
    pub output: f64,
    /// Input tokens read from a prompt cache (default: the input price, or in a tier the base
    /// prices' ratio to input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    /// Input tokens written to a prompt cache (defaults as `cached_input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// Reasoning tokens (default: the output price, or in a tier the base ratio to output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<f64>,
}

/// Prices of one model from one date on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// First day these prices apply (`YYYY-MM-DD`, UTC).
    pub effective: String,
    /// The standard prices.
    #[serde(flatten)]
    pub tokens: TokenPrices,
    /// The share of these prices paid for a batch (or flex-tier) request: 0.5 is half price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_factor: Option<f64>,
    /// Long-context prices: a request with more input tokens than a tier's threshold pays the
    /// tier's prices for all its tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<Tier>,
    /// The list price of one unit for a model billed per [`ModelPrices::unit`]: kept so a
    /// reader of the book sees the figure, never turned into a cost from tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_unit: Option<f64>,
    /// Where the figures come from (the provider's pricing page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Prices for requests above a number of input tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tier {
    /// The tier applies to requests with more input tokens than this.
    pub above_input_tokens: u64,
    /// Its prices.
    #[serde(flatten)]
    pub tokens: TokenPrices,
}

/// All prices of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPrices {
    /// Model name as providers spell it (see [`names::canonical`]).
    pub model: String,
    /// Provider.
    #[serde(default)]
    pub provider: String,
    /// What the model does: `chat`, `reasoning`, `embedding` or `completion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// What the provider bills when it is not tokens (`image`, `second`, `character`): Loupe
    /// then shows the model as not priced rather than guessing from tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Prices by effective date.
    pub prices: Vec<Price>,
}

/// A price book.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PriceBook {
    /// Version of the book (a date).
    pub version: String,
    /// Models.
    pub models: Vec<ModelPrices>,
    /// Names clients send for a model that no rule of [`names`] resolves (`chatgpt-4o-latest`),
    /// to the model's name in the book.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, String>,
    /// Each model's place in `models`, by name.
    #[serde(skip)]
    index: HashMap<String, usize>,
}

impl PartialEq for PriceBook {
    fn eq(&self, other: &Self) -> bool {
        (&self.version, &self.models, &self.aliases)
            == (&other.version, &other.models, &other.aliases)
    }
}

/// Why a price file was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid price book: {0}")]
pub struct PriceError(String);

impl TokenPrices {
    /// Every figure, for validation.
    fn figures(&self) -> impl Iterator<Item = f64> {
        [
            Some(self.input),
            Some(self.output),
            self.cached_input,
            self.cache_write,
            self.reasoning,
        ]
        .into_iter()
        .flatten()
    }
}

/// Every figure of a price, for validation.
fn figures(p: &Price) -> impl Iterator<Item = f64> + '_ {
    p.tokens
        .figures()
        .chain(p.batch_factor)
        .chain(p.tiers.iter().flat_map(|t| t.tokens.figures()))
}

/// Checks one model's entry and sorts its prices and tiers.
fn check_model(m: &mut ModelPrices) -> Result<(), PriceError> {
    let bad = |why: String| Err(PriceError(format!("{}: {why}", m.model)));
    if m.model.trim().is_empty() {
        return Err(PriceError("a model has an empty name".into()));
    }
    if m.model != names::canonical(&m.model) {
        return bad(format!(
            "write the name as clients' names resolve to it: {:?}",
            names::canonical(&m.model)
        ));
    }
    for p in &mut m.prices {
        if days_from_date(&p.effective).is_none() {
            return bad(format!(
                "effective date {:?} is not YYYY-MM-DD",
                p.effective
            ));
        }
        if figures(p).any(|v| !v.is_finite() || v < 0.0) {
            return bad("prices must be non-negative numbers".into());
        }
        if p.batch_factor.is_some_and(|f| f > 1.0) {
            return bad("a batch factor is the share paid, at most 1".into());
        }
        p.tiers.sort_by_key(|t| t.above_input_tokens);
        if p.tiers.iter().any(|t| t.above_input_tokens == 0) {
            return bad("a tier's threshold must be above 0 tokens".into());
        }
    }
    m.prices
        .sort_by_key(|p| days_from_date(&p.effective).unwrap_or(0));
    if m.prices
        .windows(2)
        .any(|w| w[0].effective == w[1].effective)
    {
        return bad("two prices take effect on the same day".into());
    }
    Ok(())
}

impl PriceBook {
    /// The compiled-in book.
    pub fn builtin() -> Self {
        // The file is part of the source tree and checked by a test.
        Self::parse(DEFAULT_PRICES).unwrap_or_else(|_| PriceBook::empty())
    }

    /// A book that prices nothing.
    pub fn empty() -> Self {
        PriceBook {
            version: String::new(),
            models: Vec::new(),
            aliases: BTreeMap::new(),
            index: HashMap::new(),
        }
    }

    /// Rebuilds the name index after `models` changed.
    fn reindex(&mut self) {
        self.index = self
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.model.clone(), i))
            .collect();
    }

    /// Parses and validates a book.
    pub fn parse(json: &str) -> Result<Self, PriceError> {
        let mut book: PriceBook =
            serde_json::from_str(json).map_err(|e| PriceError(e.to_string()))?;
        for m in &mut book.models {
            check_model(m)?;
        }
        book.reindex();
        if book.index.len() != book.models.len() {
            let mut seen = std::collections::HashSet::new();
            let twice = book.models.iter().find(|m| !seen.insert(&m.model));
            return Err(PriceError(format!(
                "{} is in the book twice",
                twice.map_or("a model", |m| m.model.as_str())
            )));
        }
        if let Some((alias, to)) = book
            .aliases
            .iter()
            .find(|(_, to)| !book.index.contains_key(to.as_str()))
        {
            return Err(PriceError(format!(
                "alias {alias:?} names {to:?}, which the book does not price"
            )));
        }
        Ok(book)
    }

    /// This book with `overrides` on top: a model in both takes the override's prices.
    pub fn merged(mut self, overrides: PriceBook) -> Self {
        for o in overrides.models {
            match self.index.get(&o.model) {
                Some(&i) => self.models[i] = o,
                None => self.models.push(o),
            }
        }
        self.reindex();
        self.aliases.extend(overrides.aliases);
        self.version = format!("{}+{}", self.version, overrides.version);
        self
    }

    /// The entry for a model name as a client sent it: the book's own name for it, an alias,
    /// or the longest entry the name is a snapshot or variant of (see [`names`]).
    pub fn lookup(&self, model: &str) -> Option<&ModelPrices> {
        let name = names::canonical(model);
        let entry = |n: &str| {
            self.index
                .get(n)
                .or_else(|| self.aliases.get(n).and_then(|to| self.index.get(to)))
                .map(|&i| &self.models[i])
        };
        if let Some(m) = entry(&name) {
            return Some(m);
        }
        name.rmatch_indices(['-', ':'])
            .map(|(at, _)| at)
            .filter(|&at| names::is_variant_suffix(&name[at..]))
            .find_map(|at| entry(&name[..at]))
    }

    /// Why a model's tokens get no cost, when they do not: not in the book, or billed by
    /// another unit than tokens. `None` when the book prices the model's tokens.
    pub fn missing_price(&self, model: &str) -> Option<String> {
        match self.lookup(model) {
            None => Some(format!("no price for {model}")),
            Some(m) => m
                .unit
                .as_ref()
                .map(|unit| format!("{model} is billed per {unit}, not per token: not priced")),
        }
    }

    /// The prices in force for `model` at `at_ns` (ns since the epoch); the earliest known
    /// prices for times before the first effective date.
    pub fn price_at(&self, model: &str, at_ns: u64) -> Option<&Price> {
        let entry = self.lookup(model)?;
        if entry.unit.is_some() {
            return None;
        }
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
    /// side (including reasoning), US dollars: at the long-context tier the request's input
    /// reaches, and at the batch share when the span is a batch request.
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
        let rates = Rates::of(price, d.input_tokens.unwrap_or(0));
        let cached = (d.cache_read_tokens.unwrap_or(0) as f64).min(input);
        let written = (d.cache_write_tokens.unwrap_or(0) as f64).min(input - cached);
        let reasoning = (d.reasoning_tokens.unwrap_or(0) as f64).min(output);
        let share = if d.batch {
            price.batch_factor.unwrap_or(1.0)
        } else {
            1.0
        };
        let per = 1e-6 * share;
        let input_cost = (input - cached - written) * rates.input * per
            + cached * rates.cached_input * per
            + written * rates.cache_write * per;
        let output_cost =
            (output - reasoning) * rates.output * per + reasoning * rates.reasoning * per;
        Some((input_cost, output_cost))
    }
}

/// The per-million-token rates a request pays.
struct Rates {
    input: f64,
    output: f64,
    cached_input: f64,
    cache_write: f64,
    reasoning: f64,
}

impl Rates {
    /// The rates of `price` for a request of `input_tokens`: its highest tier below that, else
    /// the base prices. A tier without its own cache or reasoning prices keeps the base
    /// prices' ratios to input and output.
    fn of(price: &Price, input_tokens: u64) -> Self {
        let base = &price.tokens;
        let cached = base.cached_input.unwrap_or(base.input);
        let write = base.cache_write.unwrap_or(base.input);
        let reasoning = base.reasoning.unwrap_or(base.output);
        let Some(t) = price
            .tiers
            .iter()
            .rev()
            .find(|t| input_tokens > t.above_input_tokens)
        else {
            return Rates {
                input: base.input,
                output: base.output,
                cached_input: cached,
                cache_write: write,
                reasoning,
            };
        };
        let t = &t.tokens;
        let scaled = |v: f64, from: f64, to: f64| if from > 0.0 { v / from * to } else { to };
        Rates {
            input: t.input,
            output: t.output,
            cached_input: t
                .cached_input
                .unwrap_or_else(|| scaled(cached, base.input, t.input)),
            cache_write: t
                .cache_write
                .unwrap_or_else(|| scaled(write, base.input, t.input)),
            reasoning: t
                .reasoning
                .unwrap_or_else(|| scaled(reasoning, base.output, t.output)),
        }
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
        assert!(book.models.len() >= MIN_MODELS, "{}", book.models.len());
        assert_eq!(PriceBook::builtin(), book);
    }

    #[test]
    fn new_models_cost_their_own_list_prices() {
        let book = PriceBook::builtin();
        let cost = |model: &str, i: u64, o: u64| book.cost(&derived(model, i, o), NOV_2025);
        let million = 1_000_000;
        for (model, expected) in [
            ("claude-opus-4-5-20251101", 5.0 + 25.0),
            ("gpt-5.2", 1.75 + 14.0),
            ("groq/llama-3.3-70b-versatile", 0.59 + 0.79),
            ("us.meta.llama3-3-70b-instruct-v1:0", 0.72 + 0.72),
        ] {
            let c = cost(model, million, million).unwrap();
            assert!(
                (c - expected).abs() < 1e-9,
                "{model}: {c}, expected {expected}"
            );
        }
        let long = cost("gemini-2.5-pro", 300_000, 0).unwrap();
        assert!(
            (long - 0.75).abs() < 1e-9,
            "above 200k tokens, $2.50 per 1M: {long}"
        );
        let long = cost("dashscope/qwen3-max", 100_000, 0).unwrap();
        assert!((long - 0.24).abs() < 1e-9, "Qwen's 32k-128k range: {long}");
        assert_eq!(
            book.missing_price("dall-e-3").as_deref(),
            Some("dall-e-3 is billed per image, not per token: not priced")
        );
        assert!(cost("dall-e-3", 10, 10).is_none());
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
        assert_eq!(
            book.lookup("gpt-4.1-mini-2025-04-14").unwrap().model,
            "gpt-4.1-mini-2025-04-14",
            "a snapshot the book lists is its own entry"
        );
        assert_eq!(
            book.lookup("gpt-4.1-mini-2031-01-01").unwrap().model,
            "gpt-4.1-mini",
            "a snapshot it does not list prices as its model"
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

    /// The names the instrumentors and clients send resolve to the model they mean, never to
    /// an older model whose name is a prefix.
    #[test]
    fn names_as_clients_send_them() {
        let book = PriceBook::builtin();
        let is = |sent: &str, entry: &str| {
            let got = book.lookup(sent).map(|m| m.model.as_str());
            assert!(
                got == Some(entry) || got.is_some_and(|g| g.starts_with(entry)),
                "{sent} → {got:?}, expected {entry}"
            );
        };
        is("gpt-5.2", "gpt-5.2");
        is("openai/gpt-5.2", "gpt-5.2");
        is("azure/gpt-5.1", "gpt-5.1");
        is("gpt-5.1-2025-11-13", "gpt-5.1");
        is("claude-opus-4-5", "claude-opus-4-5");
        is("claude-opus-4-5-20251101", "claude-opus-4-5");
        is("claude-sonnet-4-5@20250929", "claude-sonnet-4-5");
        is(
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "claude-sonnet-4-5",
        );
        is(
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "claude-sonnet-4-5",
        );
        is("publishers/google/models/gemini-2.5-pro", "gemini-2.5-pro");
        is("models/gemini-2.5-flash", "gemini-2.5-flash");
        is("gemini-3-pro-preview", "gemini-3-pro");
        is("amazon.nova-pro-v1:0", "nova-pro");
        is("GPT-4o", "gpt-4o");
        for (newer, older) in [
            ("claude-opus-4-5", "claude-opus-4"),
            ("gpt-5.2", "gpt-5"),
            ("claude-sonnet-4-5", "claude-sonnet-4"),
        ] {
            assert_ne!(book.lookup(newer).unwrap().model, older, "{newer}");
        }
        assert!(
            book.lookup("gpt-5.9").is_none(),
            "an unknown version is not gpt-5"
        );
        assert!(book.lookup("claude-opus-4-9").is_none());
        assert_eq!(
            book.missing_price("gpt-9-turbo").as_deref(),
            Some("no price for gpt-9-turbo")
        );
        assert_eq!(book.missing_price("gpt-5.2"), None);
    }

    /// A small book with a long-context tier, a batch share, an alias and a per-image model.
    fn special_book() -> PriceBook {
        PriceBook::parse(
            r#"{"version": "t", "aliases": {"big-latest": "big"}, "models": [
            {"model": "big", "prices": [{"effective": "2020-01-01", "input": 2.0, "output": 10.0,
              "cached_input": 0.5, "batch_factor": 0.5,
              "tiers": [{"above_input_tokens": 200000, "input": 4.0, "output": 15.0}]}]},
            {"model": "painter", "unit": "image",
             "prices": [{"effective": "2020-01-01", "input": 0.0, "output": 0.0}]}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn long_context_tiers_batch_and_units() {
        let book = special_book();
        let small = book
            .cost(&derived("big", 200_000, 1_000_000), NOV_2025)
            .unwrap();
        assert!(
            (small - (0.4 + 10.0)).abs() < 1e-9,
            "at the threshold: base prices {small}"
        );
        let large = book
            .cost(&derived("big", 200_001, 1_000_000), NOV_2025)
            .unwrap();
        assert!(
            (large - (200_001.0 * 4e-6 + 15.0)).abs() < 1e-9,
            "above it, every token at the tier's prices: {large}"
        );
        let mut cached = derived("big", 400_000, 0);
        cached.cache_read_tokens = Some(400_000);
        let c = book.cost(&cached, NOV_2025).unwrap();
        assert!(
            (c - 0.4).abs() < 1e-9,
            "the tier keeps the cache discount ratio: {c}"
        );
        let mut batch = derived("big", 100_000, 1_000_000);
        batch.batch = true;
        let c = book.cost(&batch, NOV_2025).unwrap();
        assert!((c - 5.1).abs() < 1e-9, "half of 10.2: {c}");
        let c = book
            .cost(&derived("big-latest", 100_000, 0), NOV_2025)
            .unwrap();
        assert!((c - 0.2).abs() < 1e-9, "an alias prices as its model: {c}");
        let flex = serde_json::json!({
            "gen_ai.request.model": "big",
            "gen_ai.usage.input_tokens": 100_000,
            "gen_ai.usage.output_tokens": 0,
            "openai.request.service_tier": "flex",
        });
        let d = book.derive(flex.as_object().unwrap(), NOV_2025);
        assert!(d.batch, "a flex-tier request is billed at batch prices");
        assert!((d.cost_usd.unwrap() - 0.1).abs() < 1e-9, "{:?}", d.cost_usd);
        assert!(book.cost(&derived("painter", 10, 10), NOV_2025).is_none());
        assert_eq!(
            book.missing_price("painter").as_deref(),
            Some("painter is billed per image, not per token: not priced")
        );
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
            r#"{"version": "x", "models": [{"model": "openai/m", "prices": []}]}"#,
            r#"{"version": "x", "models": [{"model": "m", "prices": []}, {"model": "m", "prices": []}]}"#,
            r#"{"version": "x", "models": [{"model": "m", "prices": [{"effective": "2024-01-01", "input": 1, "output": 1}, {"effective": "2024-01-01", "input": 2, "output": 1}]}]}"#,
            r#"{"version": "x", "models": [{"model": "m", "prices": [{"effective": "2024-01-01", "input": 1, "output": 1, "tiers": [{"above_input_tokens": 0, "input": 1, "output": 1}]}]}]}"#,
            r#"{"version": "x", "models": [{"model": "m", "prices": [{"effective": "2024-01-01", "input": 1, "output": 1, "batch_factor": 2}]}]}"#,
            r#"{"version": "x", "aliases": {"n": "nope"}, "models": [{"model": "m", "prices": []}]}"#,
            "not json",
        ] {
            assert!(PriceBook::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(days_from_date("1970-01-01"), Some(0));
        assert_eq!(days_from_date("2024-03-01"), Some(19_783));
    }
}
