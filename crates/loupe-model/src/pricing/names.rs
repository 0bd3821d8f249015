//! Model names as clients send them, resolved to the names the price book spells.
//!
//! Clients name one model many ways: with a router's prefix (`openai/gpt-5.2`, `azure/…`),
//! a path (`publishers/google/models/gemini-2.5-pro`, `models/gemini-2.5-pro`), Bedrock's
//! region and vendor prefixes and version suffix (`us.anthropic.claude-sonnet-4-5-20250929-v1:0`),
//! Vertex's `@` before a snapshot date (`claude-sonnet-4-5@20250929`), a dated snapshot or a
//! `-latest` alias. A name resolves to the book's entry for it, else to the longest entry it is
//! a snapshot of. A version number is never taken for a snapshot: `claude-opus-4-5` is not
//! `claude-opus-4`, and `gpt-5.2` is not `gpt-5`.

/// Bedrock's cross-region inference prefixes.
const BEDROCK_REGIONS: &[&str] = &[
    "us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.",
];

/// Bedrock's model vendors, whose ids begin `vendor.`.
const BEDROCK_VENDORS: &[&str] = &[
    "anthropic.",
    "amazon.",
    "meta.",
    "cohere.",
    "mistral.",
    "ai21.",
    "deepseek.",
    "qwen.",
    "openai.",
    "writer.",
];

/// Words a snapshot or alias of a model may add to its name.
const VARIANT_WORDS: &[&str] = &[
    "latest",
    "preview",
    "exp",
    "experimental",
    "snapshot",
    "stable",
];

/// A model name as the book spells models: lower case, without a router's prefix or path,
/// Bedrock's region and vendor prefixes, and with Vertex's `@` as a `-`.
pub fn canonical(model: &str) -> String {
    let last = model.trim().rsplit('/').next().unwrap_or("");
    let mut name = last.to_ascii_lowercase();
    if let Some(rest) = strip_any(&name, BEDROCK_REGIONS)
        && strip_any(rest, BEDROCK_VENDORS).is_some()
    {
        name = rest.to_string();
    }
    if let Some(rest) = strip_any(&name, BEDROCK_VENDORS) {
        name = rest.to_string();
    }
    name.replace('@', "-")
}

fn strip_any<'a>(s: &'a str, prefixes: &[&str]) -> Option<&'a str> {
    prefixes.iter().find_map(|p| s.strip_prefix(p))
}

/// Whether `rest` (what follows a book entry's name in a canonical name) makes a snapshot or
/// alias of that model rather than another model: a separator, then a date or build number
/// (three digits or more), a word such as `latest` or `preview`, or a version tag (`v1`),
/// with only numbers, such words and tags after it.
pub fn is_variant_suffix(rest: &str) -> bool {
    let Some(tail) = rest.strip_prefix(['-', ':']) else {
        return false;
    };
    let mut parts = tail.split(['-', ':']);
    let first = parts.next().unwrap_or("");
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let word = |p: &str| VARIANT_WORDS.contains(&p);
    let tag = |p: &str| p.strip_prefix('v').is_some_and(digits);
    ((digits(first) && first.len() >= 3) || word(first) || tag(first))
        && parts.all(|p| digits(p) || word(p) || tag(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_paths_go() {
        for (sent, canon) in [
            ("openai/gpt-5.2", "gpt-5.2"),
            ("azure/gpt-4o", "gpt-4o"),
            ("publishers/google/models/gemini-2.5-pro", "gemini-2.5-pro"),
            ("models/gemini-2.5-flash", "gemini-2.5-flash"),
            (
                "anthropic.claude-sonnet-4-5-20250929-v1:0",
                "claude-sonnet-4-5-20250929-v1:0",
            ),
            (
                "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "claude-sonnet-4-5-20250929-v1:0",
            ),
            ("amazon.nova-pro-v1:0", "nova-pro-v1:0"),
            ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5-20250929"),
            ("GPT-4o-Mini", "gpt-4o-mini"),
            ("us.gpt-x", "us.gpt-x"),
        ] {
            assert_eq!(canonical(sent), canon, "{sent}");
        }
    }

    #[test]
    fn versions_are_not_snapshots() {
        for yes in [
            "-20250929",
            "-2024-08-06",
            "-latest",
            "-preview-05-20",
            "-v1:0",
            "-001",
        ] {
            assert!(is_variant_suffix(yes), "{yes}");
        }
        for no in [
            "-5",
            ".2",
            "-1",
            "-mini",
            "-realtime-preview",
            "",
            "-16k",
            "-5-20251101",
        ] {
            assert!(!is_variant_suffix(no), "{no}");
        }
    }
}
