//! Models whose tokens carry no cost, found from statistics grouped by model.

use std::collections::BTreeMap;

use loupe_model::pricing::PriceBook;

use crate::StatsGroup;

/// A model seen with tokens and no cost, and why it has none.
#[derive(Debug, Clone, PartialEq)]
pub struct UnpricedModel {
    /// The model, as stored.
    pub model: String,
    /// Its spans.
    pub spans: u64,
    /// Their input tokens.
    pub input_tokens: u64,
    /// Their output tokens.
    pub output_tokens: u64,
    /// Why there is no cost.
    pub reason: String,
}

/// The models of `groups` (statistics whose key holds the model at `model_at`) that used tokens
/// at no cost: those the book does not price, and those it prices now but whose spans were
/// stored before it did. A model the book prices at zero is not among them.
pub fn unpriced_models(
    groups: &[StatsGroup],
    model_at: usize,
    book: &PriceBook,
) -> Vec<UnpricedModel> {
    let mut by_model: BTreeMap<&str, (u64, u64, u64, f64)> = BTreeMap::new();
    for g in groups {
        let Some(model) = g.key.get(model_at).and_then(|v| v.as_str()) else {
            continue;
        };
        let sums = by_model.entry(model).or_default();
        sums.0 += g.count;
        sums.1 += g.input_tokens;
        sums.2 += g.output_tokens;
        sums.3 += g.cost_usd;
    }
    by_model
        .into_iter()
        .filter(|(_, (_, input, output, cost))| input + output > 0 && *cost == 0.0)
        .filter_map(|(model, (spans, input_tokens, output_tokens, _))| {
            let reason = match book.missing_price(model) {
                Some(why) => why,
                None if charges(book, model) => crate::columns::stored_before_priced(model),
                None => return None,
            };
            Some(UnpricedModel {
                model: model.to_string(),
                spans,
                input_tokens,
                output_tokens,
                reason,
            })
        })
        .collect()
}

/// Whether the book charges anything for the model's tokens today.
fn charges(book: &PriceBook, model: &str) -> bool {
    book.price_at(model, u64::MAX)
        .is_some_and(|p| p.tokens.input > 0.0 || p.tokens.output > 0.0)
}
