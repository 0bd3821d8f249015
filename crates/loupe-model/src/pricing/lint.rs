//! The rules a published price book keeps beyond what any book must pass to load: every
//! model's provider, kind and unit known, every price sourced, unit-billed models carrying
//! their unit price, and the models the book must have. [`PriceBook::parse`] checks the rest
//! (names, dates, figures, duplicates, aliases).

use super::PriceBook;

/// Providers whose models (or hosting) the book prices.
const PROVIDERS: &[&str] = &[
    "openai",
    "anthropic",
    "google",
    "mistral",
    "meta",
    "deepseek",
    "xai",
    "cohere",
    "amazon",
    "alibaba",
    "together",
    "groq",
    "fireworks",
    "bedrock",
];
const KINDS: &[&str] = &["chat", "reasoning", "embedding", "completion"];
const UNITS: &[&str] = &["image", "second", "character", "minute"];

/// Models (or aliases) the book must price: the ones users' own examples call.
const REQUIRED: &[&str] = &[
    "gpt-5.2",
    "gpt-5.1",
    "gpt-5",
    "claude-opus-4-5",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "gemini-3-pro",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
];

/// The fewest models a published book has.
pub const MIN_MODELS: usize = 300;

impl PriceBook {
    /// Every way this book falls short of a published one, a line each; empty when none.
    pub fn lint(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for m in &self.models {
            let name = &m.model;
            if !PROVIDERS.contains(&m.provider.as_str()) {
                problems.push(format!("{name}: unknown provider {:?}", m.provider));
            }
            if let Some(k) = m.kind.as_deref().filter(|k| !KINDS.contains(k)) {
                problems.push(format!("{name}: unknown kind {k:?}"));
            }
            if let Some(u) = m.unit.as_deref().filter(|u| !UNITS.contains(u)) {
                problems.push(format!("{name}: unknown unit {u:?}"));
            }
            if m.prices.is_empty() {
                problems.push(format!("{name}: needs at least one price"));
            }
            for p in &m.prices {
                let at = format!("{name} from {}", p.effective);
                if !p
                    .source
                    .as_deref()
                    .is_some_and(|s| s.starts_with("https://"))
                {
                    problems.push(format!(
                        "{at}: needs a source, the https address of the provider's prices"
                    ));
                }
                if let Some(unit) = &m.unit
                    && p.per_unit.is_none()
                {
                    problems.push(format!("{at}: billed per {unit}, so it needs per_unit"));
                }
            }
        }
        for alias in self.aliases.keys().filter(|a| self.index.contains_key(*a)) {
            problems.push(format!("alias {alias}: is a model of the book itself"));
        }
        for name in REQUIRED {
            if !self.index.contains_key(*name) && !self.aliases.contains_key(*name) {
                problems.push(format!("{name}: missing"));
            }
        }
        if self.models.len() < MIN_MODELS {
            problems.push(format!(
                "{} models: the book should have at least {MIN_MODELS}",
                self.models.len()
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_book_is_publishable() {
        assert_eq!(PriceBook::builtin().lint(), Vec::<String>::new());
    }

    #[test]
    fn shortcomings_are_named() {
        let book = PriceBook::parse(
            r#"{"version": "t", "aliases": {"m": "m"}, "models": [
            {"model": "m", "provider": "acme", "kind": "chat", "prices": [
              {"effective": "2020-01-01", "input": 1, "output": 1}]},
            {"model": "painter", "provider": "openai", "unit": "image", "prices": [
              {"effective": "2020-01-01", "input": 0, "output": 0, "source": "https://x"}]}]}"#,
        )
        .unwrap();
        let problems = book.lint();
        for expected in [
            "m: unknown provider \"acme\"",
            "m from 2020-01-01: needs a source, the https address of the provider's prices",
            "painter from 2020-01-01: billed per image, so it needs per_unit",
            "alias m: is a model of the book itself",
            "gpt-5.2: missing",
            "2 models: the book should have at least 300",
        ] {
            assert!(
                problems.iter().any(|p| p == expected),
                "{expected} not in {problems:#?}"
            );
        }
    }
}
