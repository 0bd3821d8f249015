//! The derived columns of a span row, one type for what ingest writes, a read returns and a
//! recompute compares.

use loupe_model::normalize::Derived;
use loupe_model::pricing::PriceBook;

/// A span's indexed columns derived from its attributes and priced: the part of a span row
/// that ingest, reads, stats and recomputes all see the same way.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanColumns {
    /// Canonical span type.
    pub span_type: String,
    /// Model (the one that answered, else the one asked for).
    pub model: Option<String>,
    /// Provider.
    pub provider: Option<String>,
    /// Input tokens.
    pub input_tokens: Option<u64>,
    /// Output tokens.
    pub output_tokens: Option<u64>,
    /// Total tokens.
    pub total_tokens: Option<u64>,
    /// Cached input tokens.
    pub cache_read_tokens: Option<u64>,
    /// Input tokens written to a cache.
    pub cache_write_tokens: Option<u64>,
    /// Reasoning tokens.
    pub reasoning_tokens: Option<u64>,
    /// Cost, US dollars.
    pub cost_usd: Option<f64>,
}

impl SpanColumns {
    /// The columns stored for a span's derived fields (its cost included).
    pub fn of(d: &Derived) -> Self {
        SpanColumns {
            span_type: d.span_type.clone(),
            model: d.model().map(str::to_string),
            provider: d.provider.clone(),
            input_tokens: d.input_tokens,
            output_tokens: d.output_tokens,
            total_tokens: d.total_tokens,
            cache_read_tokens: d.cache_read_tokens,
            cache_write_tokens: d.cache_write_tokens,
            reasoning_tokens: d.reasoning_tokens,
            cost_usd: d.cost_usd,
        }
    }

    /// The derived fields these columns keep, as pricing reads them (the stored model stands
    /// for the requested one).
    pub fn derived(&self) -> Derived {
        Derived {
            span_type: self.span_type.clone(),
            request_model: self.model.clone(),
            provider: self.provider.clone(),
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            total_tokens: self.total_tokens,
            cache_read_tokens: self.cache_read_tokens,
            cache_write_tokens: self.cache_write_tokens,
            reasoning_tokens: self.reasoning_tokens,
            cost_usd: self.cost_usd,
            ..Derived::default()
        }
    }

    /// Why a span that used tokens of a model has no cost: the book's reason, or that it was
    /// stored before the book priced its model. `None` when it has a cost or used no tokens.
    pub fn missing_price(&self, book: &PriceBook) -> Option<String> {
        let model = self.model.as_deref()?;
        if self.cost_usd.is_some() || (self.input_tokens.is_none() && self.output_tokens.is_none())
        {
            return None;
        }
        Some(
            book.missing_price(model)
                .unwrap_or_else(|| stored_before_priced(model)),
        )
    }
}

/// The reason given for a model the book prices whose stored spans have no cost.
pub(crate) fn stored_before_priced(model: &str) -> String {
    format!("{model} was stored before the book priced it: `loupe reprice` fills in its cost")
}
