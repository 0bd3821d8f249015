//! Query text → tokens, each with its character position.

use crate::QueryError;

/// A token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A field path, split on dots: `span.attributes.llm.model` → 4 parts. Backquoted or
    /// double-quoted parts may hold any character: ``tags.`my key` ``.
    Path(Vec<String>),
    /// A single-quoted string (`''` escapes a quote).
    Str(String),
    /// A number, with an optional unit suffix (`5s`, `1.5h`, `200ms`).
    Num(f64, Option<String>),
    /// `=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`, `~`
    Op(&'static str),
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `,`
    Comma,
    /// `+`
    Plus,
    /// `-`
    Minus,
}

/// A token and where it starts (1-based character position).
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Position.
    pub pos: usize,
}

/// Longest accepted query, in characters.
pub const MAX_QUERY_CHARS: usize = 10_000;

fn ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == ':' || c == '/'
}

/// Splits the text into tokens.
pub fn lex(text: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > MAX_QUERY_CHARS {
        return Err(QueryError::at(
            MAX_QUERY_CHARS,
            format!("the query is longer than {MAX_QUERY_CHARS} characters"),
        ));
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let (tok, next) = if let Some((tok, len)) = punctuation(&chars[i..]) {
            (tok, i + len)
        } else if c == '!' {
            return Err(QueryError::at(pos, "expected `!=` after `!`"));
        } else if c == '\'' {
            let (s, next) = quoted(&chars, i, '\'')?;
            (Tok::Str(s), next)
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            number(&chars, i)?
        } else if ident_start(c) || c == '`' || c == '"' {
            path(&chars, i)?
        } else {
            return Err(QueryError::at(pos, format!("unexpected character {c:?}")));
        };
        out.push(Token { tok, pos });
        i = next;
    }
    Ok(out)
}

/// The operator or punctuation mark `rest` starts with, and its length in characters.
fn punctuation(rest: &[char]) -> Option<(Tok, usize)> {
    Some(match (rest[0], rest.get(1)) {
        ('(', _) => (Tok::LParen, 1),
        (')', _) => (Tok::RParen, 1),
        (',', _) => (Tok::Comma, 1),
        ('+', _) => (Tok::Plus, 1),
        ('-', _) => (Tok::Minus, 1),
        ('~', _) => (Tok::Op("~"), 1),
        // `==` is accepted as `=`.
        ('=', Some('=')) => (Tok::Op("="), 2),
        ('=', _) => (Tok::Op("="), 1),
        ('!', Some('=')) | ('<', Some('>')) => (Tok::Op("!="), 2),
        ('<', Some('=')) => (Tok::Op("<="), 2),
        ('<', _) => (Tok::Op("<"), 1),
        ('>', Some('=')) => (Tok::Op(">="), 2),
        ('>', _) => (Tok::Op(">"), 1),
        _ => return None,
    })
}

/// A number starting at `i`, with its exponent and unit suffix, and where the text after it
/// starts.
fn number(chars: &[char], mut i: usize) -> Result<(Tok, usize), QueryError> {
    let pos = i + 1;
    let start = i;
    while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
        i += 1;
    }
    let exponent = i < chars.len()
        && (chars[i] == 'e' || chars[i] == 'E')
        && chars
            .get(i + 1)
            .is_some_and(|c| c.is_ascii_digit() || *c == '-' || *c == '+');
    if exponent {
        i += 2;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
    }
    let num: String = chars[start..i].iter().collect();
    let value: f64 = num
        .parse()
        .map_err(|_| QueryError::at(pos, format!("invalid number {num:?}")))?;
    let unit_start = i;
    while i < chars.len() && chars[i].is_ascii_alphabetic() {
        i += 1;
    }
    let unit: String = chars[unit_start..i].iter().collect();
    Ok((Tok::Num(value, (!unit.is_empty()).then_some(unit)), i))
}

/// A dotted field path starting at `i` (its parts bare or quoted), and where the text after
/// it starts.
fn path(chars: &[char], mut i: usize) -> Result<(Tok, usize), QueryError> {
    let mut parts = Vec::new();
    loop {
        match chars.get(i).copied() {
            Some(q @ ('`' | '"')) => {
                let (s, next) = quoted(chars, i, q)?;
                parts.push(s);
                i = next;
            }
            Some(c) if ident_start(c) || c.is_ascii_digit() => {
                let start = i;
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
                parts.push(chars[start..i].iter().collect());
            }
            _ => return Err(QueryError::at(i + 1, "expected a field name after `.`")),
        }
        if chars.get(i) == Some(&'.') {
            i += 1;
        } else {
            return Ok((Tok::Path(parts), i));
        }
    }
}

/// A quoted run starting at `start` (the opening quote); a doubled quote is a literal quote.
fn quoted(chars: &[char], start: usize, q: char) -> Result<(String, usize), QueryError> {
    let mut s = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => {
                return Err(QueryError::at(
                    start + 1,
                    format!("unterminated {q}quoted{q} text"),
                ));
            }
            Some(&c) if c == q => {
                if chars.get(i + 1) == Some(&q) {
                    s.push(q);
                    i += 2;
                } else {
                    return Ok((s, i + 1));
                }
            }
            Some('\\') if q != '`' && chars.get(i + 1).is_some() => {
                s.push(chars[i + 1]);
                i += 2;
            }
            Some(&c) => {
                s.push(c);
                i += 1;
            }
        }
    }
}
