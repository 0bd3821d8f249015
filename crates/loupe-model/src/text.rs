//! Full-text terms: one normalization for documents and for queries, shared by every backend.
//!
//! Text becomes a sequence of terms separated by single spaces:
//! - words (runs of letters and digits) are lower-cased, compatibility-decomposed (NFKD) and
//!   stripped of combining marks, so `Café`, `CAFE` and `café` are all `cafe`, and Arabic
//!   vowel marks or Hebrew points do not split or change a word;
//! - scripts written without spaces (Han, kana, Hangul) are cut into overlapping pairs of
//!   characters, with a run's last character once more on its own: `我要退款` is
//!   `我要 要退 退款 款`. Any run of 1 or more of those characters in a query is then a set of
//!   pairs (or a prefix, for a single character), so Chinese and Japanese match inside words
//!   without a dictionary.
//!
//! A query matches a document holding all of its terms, the last one as a prefix (`refund` also
//! finds `refunds`). Term order is not checked: an index without positions is several times smaller
//! and faster to build (figures: docs/performance.md, "Body storage and encoding"), and
//! for the pairs of an unspaced script "all pairs present" is as good as the phrase in practice.
//! Backends index the document text as it is ([`SpanText`]) and turn the query into their own
//! syntax ([`fts5_query`], [`pg_tsquery`], [`pg_tsvector`]); the terms hold only letters and
//! digits, so nothing a user types reaches either syntax unquoted.

use std::collections::HashSet;

use crate::normalize::LlmView;
use serde_json::Value;
use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// Longest text taken from one span (bytes, before normalization); the rest of a huge payload
/// is not indexed.
pub const MAX_SPAN_TEXT: usize = 256 * 1024;

/// Longest single term kept (bytes); longer runs (base64, hashes) are dropped.
const MAX_TERM: usize = 64;

fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF          // Hiragana, Katakana
        | 0x31F0..=0x31FF        // Katakana extensions
        | 0x3400..=0x4DBF        // CJK extension A
        | 0x4E00..=0x9FFF        // CJK unified ideographs
        | 0xAC00..=0xD7AF        // Hangul syllables
        | 0xF900..=0xFAFF        // CJK compatibility ideographs
        | 0xFF66..=0xFF9F        // half-width Katakana
        | 0x20000..=0x3FFFF) // CJK extensions B and later
}

/// Splits text into terms, as the module describes, appending them to `out` separated by
/// single spaces (one buffer: no allocation per term).
struct Terms<'a> {
    out: &'a mut String,
    word: String,
    run: Vec<char>,
}

impl Terms<'_> {
    fn emit(&mut self, term: impl Iterator<Item = char>) {
        if !self.out.is_empty() {
            self.out.push(' ');
        }
        self.out.extend(term);
    }

    fn flush_word(&mut self) {
        if !self.word.is_empty() {
            if self.word.len() <= MAX_TERM {
                if !self.out.is_empty() {
                    self.out.push(' ');
                }
                self.out.push_str(&self.word);
            }
            self.word.clear();
        }
    }

    /// Ends a run of unspaced characters; `trailing` leaves out what only a document needs
    /// (the final single character after the pairs), for the end of a query.
    fn flush_run(&mut self, trailing: bool) {
        let run = std::mem::take(&mut self.run);
        match run.len() {
            0 => {}
            1 => self.emit(run.iter().copied()),
            n => {
                for w in run.windows(2) {
                    self.emit(w.iter().copied());
                }
                if !trailing {
                    self.emit(std::iter::once(run[n - 1]));
                }
            }
        }
        self.run = run;
        self.run.clear();
    }

    fn push(&mut self, text: &str) {
        for c in text.chars() {
            if c.is_ascii() {
                if !self.run.is_empty() {
                    self.flush_run(false);
                }
                if c.is_ascii_alphanumeric() {
                    self.word.push(c.to_ascii_lowercase());
                } else {
                    self.flush_word();
                }
                continue;
            }
            if is_unspaced(c) {
                self.flush_word();
                self.run.push(c);
                continue;
            }
            self.flush_run(false);
            let mut parts = ['\0'; 18];
            let mut n = 0;
            decompose_compatible(c, |d| {
                if n < parts.len() {
                    parts[n] = d;
                    n += 1;
                }
            });
            for &d in &parts[..n] {
                if is_combining_mark(d) {
                    continue;
                }
                if d.is_alphanumeric() {
                    self.word.extend(d.to_lowercase());
                } else {
                    self.flush_word();
                }
            }
        }
    }
}

/// Appends the terms of `text` to `out` (space-separated), as a document holds them.
pub fn push_terms(text: &str, out: &mut String) {
    let mut t = Terms {
        out,
        word: String::new(),
        run: Vec::new(),
    };
    t.push(text);
    t.flush_word();
    t.flush_run(false);
}

/// The terms of `text`, as a document holds them.
pub fn terms(text: &str) -> Vec<String> {
    let mut out = String::new();
    push_terms(text, &mut out);
    out.split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// The terms of a query: as [`terms`], but a trailing run of unspaced characters ends with its
/// last pair (the last term is matched as a prefix). Empty when the text has no letter or
/// digit.
pub fn query_terms(text: &str) -> Vec<String> {
    let mut out = String::new();
    let mut t = Terms {
        out: &mut out,
        word: String::new(),
        run: Vec::new(),
    };
    t.push(text);
    t.flush_word();
    t.flush_run(true);
    out.split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// The searchable text of spans: their inputs, outputs, messages, retrieved documents, status
/// messages and exception messages, as terms. Identical strings are taken once, so the prompt
/// a chain hands down to its model call is indexed once per document.
#[derive(Debug, Default)]
pub struct SpanText {
    seen: HashSet<u64>,
    text: String,
    bytes: usize,
}

impl SpanText {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one string.
    pub fn add_str(&mut self, s: &str) {
        if s.is_empty() || self.bytes >= MAX_SPAN_TEXT {
            return;
        }
        let h = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            s.hash(&mut h);
            h.finish()
        };
        if !self.seen.insert(h) {
            return;
        }
        let take = floor_char_boundary(s, MAX_SPAN_TEXT - self.bytes);
        self.bytes += take;
        push_terms(&s[..take], &mut self.text);
    }

    /// Adds every string inside a JSON value (object keys are not text).
    pub fn add_json(&mut self, v: &Value) {
        match v {
            Value::String(s) => {
                let t = s.trim_start();
                if (t.starts_with('{') || t.starts_with('['))
                    && let Ok(inner) = serde_json::from_str::<Value>(s)
                {
                    return self.add_json(&inner);
                }
                self.add_str(s)
            }
            Value::Array(items) => items.iter().for_each(|x| self.add_json(x)),
            Value::Object(m) => m.values().for_each(|x| self.add_json(x)),
            Value::Number(_) | Value::Bool(_) | Value::Null => {}
        }
    }

    /// Adds what a reader sees of a span, and its status message.
    pub fn add_view(&mut self, view: &LlmView, status_message: &str) {
        for v in [&view.inputs, &view.outputs].into_iter().flatten() {
            self.add_json(v);
        }
        for m in view.input_messages.iter().chain(&view.output_messages) {
            if let Some(c) = &m.content {
                self.add_str(c);
            }
        }
        for d in &view.documents {
            if let Some(c) = &d.content {
                self.add_str(c);
            }
        }
        for e in &view.exceptions {
            if let Some(m) = &e.message {
                self.add_str(m);
            }
        }
        self.add_str(status_message);
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The terms, space-separated (what an FTS5 table with the `unicode61` tokenizer indexes).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The distinct terms, as a PostgreSQL `tsvector` literal (cast with `::tsvector`).
    pub fn pg_tsvector(&self) -> String {
        pg_tsvector(self.text.split(' '))
    }
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A `tsvector` literal of the distinct terms (no positions: queries never ask for order).
pub fn pg_tsvector<'a>(terms: impl IntoIterator<Item = &'a str>) -> String {
    let mut seen = HashSet::new();
    let mut out = String::new();
    for t in terms {
        if !t.is_empty() && seen.insert(t) {
            if !out.is_empty() {
                out.push(' ');
            }
            push_pg_lexeme(t, &mut out);
        }
    }
    out
}

fn push_pg_lexeme(t: &str, out: &mut String) {
    out.push('\'');
    for c in t.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
}

/// An FTS5 query for `text`: all its terms, the last one a prefix. `None` when the text has
/// no letter or digit.
pub fn fts5_query(text: &str) -> Option<String> {
    let mut out = String::new();
    for t in query_terms(text) {
        if !out.is_empty() {
            out.push(' ');
        }
        // Terms are letters and digits only; a `"` cannot appear, but is doubled all the same.
        out.push('"');
        out.push_str(&t.replace('"', "\"\""));
        out.push('"');
    }
    if out.is_empty() {
        None
    } else {
        out.push_str(" *");
        Some(out)
    }
}

/// A PostgreSQL `tsquery` literal for `text` (cast with `::tsquery`): all the terms (`&`), the
/// last one a prefix. `None` when the text has no letter or digit.
pub fn pg_tsquery(text: &str) -> Option<String> {
    let terms = query_terms(text);
    let mut out = String::new();
    for (i, t) in terms.iter().enumerate() {
        if i > 0 {
            out.push_str(" & ");
        }
        push_pg_lexeme(t, &mut out);
    }
    if out.is_empty() {
        None
    } else {
        out.push_str(":*");
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_case_and_accents() {
        assert_eq!(
            terms("Café CAFE café! naïve-Ünïcode"),
            ["cafe", "cafe", "cafe", "naive", "unicode"]
        );
        // Decomposed input (e + combining acute) reads the same as precomposed.
        assert_eq!(terms("cafe\u{301}"), ["cafe"]);
        assert_eq!(terms("ﬁle ①"), ["file", "1"]);
    }

    #[test]
    fn arabic_words_lose_their_vowel_marks_not_their_letters() {
        assert_eq!(terms("مَرْحَبًا بِكُم"), terms("مرحبا بكم"));
        assert_eq!(terms("استرداد المبلغ").len(), 2);
    }

    #[test]
    fn unspaced_scripts_become_pairs() {
        assert_eq!(terms("我要退款"), ["我要", "要退", "退款", "款"]);
        assert_eq!(terms("退"), ["退"]);
        assert_eq!(
            terms("gpt-4o 说 退款了"),
            ["gpt", "4o", "说", "退款", "款了", "了"]
        );
        assert_eq!(query_terms("退款"), ["退款"]);
        assert_eq!(query_terms("退款 refund"), ["退款", "款", "refund"]);
    }

    #[test]
    fn queries_want_every_term_and_take_the_last_as_a_prefix() {
        assert_eq!(
            fts5_query("Refund please").as_deref(),
            Some("\"refund\" \"please\" *")
        );
        assert_eq!(fts5_query("!!! ..."), None);
        assert_eq!(
            pg_tsquery("it's 退款").as_deref(),
            Some("'it' & 's' & '退款':*")
        );
        assert_eq!(pg_tsquery("  "), None);
    }

    #[test]
    fn a_query_phrase_lines_up_with_the_document() {
        // Every substring-shaped query of the document is a contiguous run of its terms.
        let doc = terms("客户说：我要退款 refund now");
        for q in ["我要", "要退款", "退款 refund", "款", "说", "refund no"] {
            let q = query_terms(q);
            let n = q.len();
            let found = doc
                .windows(n)
                .any(|w| w[..n - 1] == q[..n - 1] && w[n - 1].starts_with(q[n - 1].as_str()));
            assert!(found, "{q:?} in {doc:?}");
        }
    }

    #[test]
    fn tsvector_lists_each_term_once() {
        assert_eq!(pg_tsvector(["a", "b", "a"]), "'a' 'b'");
    }

    #[test]
    fn documents_take_each_string_once_and_skip_keys() {
        let mut d = SpanText::new();
        d.add_json(
            &serde_json::json!({"question": "Where is my refund?", "k": ["Where is my refund?"]}),
        );
        d.add_json(&serde_json::json!("{\"nested\": \"json text\"}"));
        assert_eq!(d.text(), "where is my refund json text");
    }
}
