//! MLflow's search filters and `order_by` for runs (`metrics.acc > 0.9 AND params.lr = '0.01'
//! AND tags.`mlflow.runName` LIKE 'eval%' AND attributes.status = 'FINISHED'`, `metrics.acc
//! DESC`) and evaluation datasets (`name LIKE 'qa%' AND tags.team = 'search'`), read with the
//! query language's lexer and evaluated in memory over the searched entities. As in MLflow,
//! clauses are joined by `AND` only, and an entity without the metric, param or tag a clause
//! names does not match it. Each entity says which keys it has ([`run_key`], [`dataset_key`])
//! and how to read them ([`Searchable`]).

use std::cmp::Ordering;

use loupe_query::lexer::{Tok, Token, lex};
use loupe_query::post::like_match;
use loupe_store::datasets::EvalDataset;
use loupe_store::runs::Run;

/// What a filter reads from an entity.
pub(crate) trait Searchable {
    /// The text values of a key (several for a run's datasets; none when absent).
    fn texts(&self, key: &Key) -> Vec<&str>;
    /// The number of a key, if it has one.
    fn number(&self, key: &Key) -> Option<f64>;
}

/// Which keys an entity's filters may name.
pub(crate) type Resolve = fn(&[String]) -> Result<Key, String>;

/// What a clause or an ordering reads from a run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Key {
    Metric(String),
    Param(String),
    Tag(String),
    /// A text attribute: `run_id`, `run_name`, `status` … of a run; `name` … of a dataset.
    Attr(&'static str),
    /// A time attribute (ms): `start_time`, `end_time`; `created_time`, `last_update_time`.
    Time(&'static str),
    /// `datasets.name`, `datasets.digest`, `datasets.context`.
    Dataset(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Num(f64),
    Str(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
struct Clause {
    key: Key,
    op: String,
    value: Value,
}

/// A parsed filter.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter(Vec<Clause>);

const STRING_ATTRS: &[&str] = &[
    "run_id",
    "run_name",
    "status",
    "user_id",
    "artifact_uri",
    "lifecycle_stage",
];
const TIME_ATTRS: &[&str] = &["start_time", "end_time"];

fn word(t: &Token) -> Option<String> {
    match &t.tok {
        Tok::Path(p) if p.len() == 1 => Some(p[0].to_ascii_uppercase()),
        _ => None,
    }
}

/// The key a path names in a run filter: `metrics.x`, `params.x`, `tags.x`, `attributes.x`
/// (or a bare attribute), `datasets.x`.
pub(crate) fn run_key(parts: &[String]) -> Result<Key, String> {
    let (entity, rest) = match parts {
        [one] => ("attributes", one.clone()),
        [entity, rest @ ..] => (entity.as_str(), rest.join(".")),
        [] => return Err("an empty identifier".into()),
    };
    let pick = |names: &[&'static str]| names.iter().copied().find(|n| *n == rest);
    let attr = |rest: &str| -> Result<Key, String> {
        let rest = if rest == "run_uuid" { "run_id" } else { rest };
        if let Some(a) = STRING_ATTRS.iter().copied().find(|n| *n == rest) {
            Ok(Key::Attr(a))
        } else if let Some(t) = TIME_ATTRS.iter().copied().find(|n| *n == rest) {
            Ok(Key::Time(t))
        } else {
            Err(format!("Invalid attribute key '{rest}' specified"))
        }
    };
    match entity.to_ascii_lowercase().as_str() {
        "metric" | "metrics" => Ok(Key::Metric(rest)),
        "param" | "params" | "parameter" | "parameters" => Ok(Key::Param(rest)),
        "tag" | "tags" => Ok(Key::Tag(rest)),
        "attribute" | "attributes" | "attr" | "run" => attr(&rest),
        "dataset" | "datasets" => pick(&["name", "digest", "context"])
            .map(Key::Dataset)
            .ok_or_else(|| format!("Invalid dataset key '{rest}' specified")),
        _ if parts.len() == 1 => attr(&rest),
        other => Err(format!("Invalid entity type '{other}'")),
    }
}

/// The key a path names in a dataset filter: `name`, `created_by`, `last_updated_by`,
/// `digest`, `dataset_id`, `created_time`, `last_update_time` (bare or `attributes.`), `tags.x`.
pub(crate) fn dataset_key(parts: &[String]) -> Result<Key, String> {
    const TEXT: &[&str] = &[
        "name",
        "created_by",
        "last_updated_by",
        "digest",
        "dataset_id",
    ];
    const TIME: &[&str] = &["created_time", "last_update_time"];
    let attr = match parts {
        [one] => one.as_str(),
        [entity, rest @ ..]
            if entity.eq_ignore_ascii_case("tags") || entity.eq_ignore_ascii_case("tag") =>
        {
            return Ok(Key::Tag(rest.join(".")));
        }
        [entity, one]
            if matches!(
                entity.to_ascii_lowercase().as_str(),
                "attribute" | "attributes"
            ) =>
        {
            one.as_str()
        }
        _ => return Err(format!("Invalid dataset key '{}'", parts.join("."))),
    };
    if let Some(a) = TEXT.iter().copied().find(|n| *n == attr) {
        Ok(Key::Attr(a))
    } else if let Some(t) = TIME.iter().copied().find(|n| *n == attr) {
        Ok(Key::Time(t))
    } else {
        Err(format!("Invalid dataset key '{attr}'"))
    }
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
    resolve: Resolve,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.i)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.i).cloned();
        self.i += 1;
        t
    }

    fn key(&mut self) -> Result<Key, String> {
        match self.next() {
            Some(Token {
                tok: Tok::Path(p), ..
            }) => (self.resolve)(&p),
            Some(t) => Err(format!("expected an identifier at {}", t.pos)),
            None => Err("expected an identifier".into()),
        }
    }

    fn op(&mut self) -> Result<String, String> {
        let t = self.next().ok_or("expected a comparison")?;
        if let Tok::Op(o) = t.tok {
            return Ok(if o == "<>" { "!=".into() } else { o.into() });
        }
        match word(&t).as_deref() {
            Some(w @ ("LIKE" | "ILIKE" | "IN")) => Ok(w.into()),
            Some("NOT") if self.peek().and_then(word).as_deref() == Some("IN") => {
                self.i += 1;
                Ok("NOT IN".into())
            }
            Some("IS") => {
                let not = self.peek().and_then(word).as_deref() == Some("NOT");
                if not {
                    self.i += 1;
                }
                match self.next().as_ref().and_then(word).as_deref() {
                    Some("NULL") => Ok(if not { "IS NOT NULL" } else { "IS NULL" }.into()),
                    _ => Err(format!("expected NULL after IS at {}", t.pos)),
                }
            }
            _ => Err(format!("expected a comparison at {}", t.pos)),
        }
    }

    fn scalar(&mut self) -> Result<Value, String> {
        let negative = matches!(self.peek().map(|t| &t.tok), Some(Tok::Minus));
        if negative {
            self.i += 1;
        }
        match self.next().map(|t| (t.tok, t.pos)) {
            Some((Tok::Num(n, None), _)) => Ok(Value::Num(if negative { -n } else { n })),
            Some((Tok::Str(s), _)) if !negative => Ok(Value::Str(s)),
            // A double-quoted value reads as a one-part path.
            Some((Tok::Path(p), _)) if !negative && p.len() == 1 => {
                Ok(Value::Str(p.into_iter().collect()))
            }
            Some((_, pos)) => Err(format!("expected a value at {pos}")),
            None => Err("expected a value".into()),
        }
    }

    fn value(&mut self, op: &str) -> Result<Value, String> {
        if op.starts_with("IS") {
            return Ok(Value::List(Vec::new()));
        }
        if !op.ends_with("IN") {
            return self.scalar();
        }
        if !matches!(self.next().map(|t| t.tok), Some(Tok::LParen)) {
            return Err("expected ( after IN".into());
        }
        let mut items = Vec::new();
        loop {
            match self.scalar()? {
                Value::Str(s) => items.push(s),
                _ => return Err("IN takes a list of strings".into()),
            }
            match self.next().map(|t| t.tok) {
                Some(Tok::Comma) => {}
                Some(Tok::RParen) => return Ok(Value::List(items)),
                _ => return Err("expected , or ) in the IN list".into()),
            }
        }
    }
}

fn check(c: &Clause) -> Result<(), String> {
    let numeric = matches!(c.key, Key::Metric(_) | Key::Time(_));
    let fits = match (&c.value, c.op.as_str()) {
        (_, "IS NULL" | "IS NOT NULL") => matches!(c.key, Key::Tag(_) | Key::Param(_)),
        (Value::Num(_), "=" | "!=" | "<" | "<=" | ">" | ">=") => numeric,
        (Value::Str(_), "=" | "!=" | "LIKE" | "ILIKE") => !numeric,
        (Value::List(_), "IN" | "NOT IN") => {
            matches!(
                c.key,
                Key::Attr(_) | Key::Dataset(_) | Key::Param(_) | Key::Tag(_)
            )
        }
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(format!(
            "Invalid comparison {:?} {} {:?}",
            c.key, c.op, c.value
        ))
    }
}

impl Filter {
    /// Parses a filter string (empty: everything) over the keys `resolve` knows.
    pub(crate) fn parse(text: &str, resolve: Resolve) -> Result<Self, String> {
        let toks = lex(text).map_err(|e| e.to_string())?;
        let mut p = Parser {
            toks,
            i: 0,
            resolve,
        };
        let mut clauses = Vec::new();
        while p.peek().is_some() {
            let key = p.key()?;
            let op = p.op()?;
            let value = p.value(&op)?;
            let clause = Clause { key, op, value };
            check(&clause)?;
            clauses.push(clause);
            match p.next() {
                None => break,
                Some(t) if word(&t).as_deref() == Some("AND") => {}
                Some(t) => {
                    return Err(format!(
                        "Invalid clause(s) in filter string at {}: only AND joins clauses",
                        t.pos
                    ));
                }
            }
        }
        Ok(Self(clauses))
    }

    /// Whether an entity passes every clause.
    pub(crate) fn matches(&self, x: &impl Searchable) -> bool {
        self.0.iter().all(|c| clause_matches(c, x))
    }
}

impl Searchable for Run {
    fn texts(&self, key: &Key) -> Vec<&str> {
        run_texts(self, key)
    }
    fn number(&self, key: &Key) -> Option<f64> {
        match key {
            Key::Metric(k) => self.metrics.get(k).map(|m| m.value),
            Key::Time("start_time") => Some(self.start_time as f64),
            Key::Time(_) => self.end_time.map(|t| t as f64),
            _ => None,
        }
    }
}

impl Searchable for EvalDataset {
    fn texts(&self, key: &Key) -> Vec<&str> {
        fn one(s: Option<&String>) -> Vec<&str> {
            s.map(String::as_str).into_iter().collect()
        }
        match key {
            Key::Tag(k) => one(self.tags.get(k)),
            Key::Attr("name") => vec![self.name.as_str()],
            Key::Attr("created_by") => one(self.created_by.as_ref()),
            Key::Attr("last_updated_by") => one(self.last_updated_by.as_ref()),
            Key::Attr("digest") => vec![self.digest.as_str()],
            Key::Attr("dataset_id") => vec![self.dataset_id.as_str()],
            _ => Vec::new(),
        }
    }
    fn number(&self, key: &Key) -> Option<f64> {
        match key {
            Key::Time("created_time") => Some(self.created_time as f64),
            Key::Time("last_update_time") => Some(self.last_update_time as f64),
            _ => None,
        }
    }
}

fn run_texts<'a>(run: &'a Run, key: &Key) -> Vec<&'a str> {
    match key {
        Key::Param(k) => run.params.get(k).map(String::as_str).into_iter().collect(),
        Key::Tag(k) => run.tags.get(k).map(String::as_str).into_iter().collect(),
        Key::Attr(a) => vec![match *a {
            "run_id" => run.run_id.as_str(),
            "run_name" => run.run_name.as_str(),
            "status" => run.status.as_str(),
            "user_id" => run.user_id.as_str(),
            "artifact_uri" => run.artifact_uri.as_str(),
            _ => run.lifecycle_stage.as_str(),
        }],
        Key::Dataset(field) => run
            .dataset_inputs
            .iter()
            .filter_map(|d| match *field {
                "context" => d
                    .get("tags")
                    .and_then(serde_json::Value::as_array)
                    .and_then(|ts| {
                        ts.iter()
                            .find(|t| t["key"] == "mlflow.data.context")
                            .and_then(|t| t["value"].as_str())
                    }),
                f => d
                    .get("dataset")
                    .and_then(|x| x.get(f))
                    .and_then(|v| v.as_str()),
            })
            .collect(),
        Key::Metric(_) | Key::Time(_) => Vec::new(),
    }
}

fn clause_matches(c: &Clause, run: &impl Searchable) -> bool {
    match (&c.value, c.op.as_str()) {
        (_, "IS NULL") => run.texts(&c.key).is_empty(),
        (_, "IS NOT NULL") => !run.texts(&c.key).is_empty(),
        (Value::Num(want), op) => run.number(&c.key).is_some_and(|v| match op {
            "=" => v == *want,
            "!=" => v != *want,
            "<" => v < *want,
            "<=" => v <= *want,
            ">" => v > *want,
            _ => v >= *want,
        }),
        (Value::Str(want), op) => run.texts(&c.key).iter().any(|v| match op {
            "=" => v == want,
            "!=" => v != want,
            "LIKE" => like_match(want, v, false),
            _ => like_match(want, v, true),
        }),
        (Value::List(items), op) => {
            let found = run
                .texts(&c.key)
                .iter()
                .any(|v| items.iter().any(|i| i == v));
            found == (op == "IN")
        }
    }
}

/// One `order_by` entry.
#[derive(Debug, Clone)]
pub(crate) struct Order {
    key: Key,
    ascending: bool,
}

impl Order {
    /// `metrics.acc DESC`, `attributes.start_time`, `params.lr ASC` …, over `resolve`'s keys.
    pub(crate) fn parse(text: &str, resolve: Resolve) -> Result<Self, String> {
        let toks = lex(text).map_err(|e| e.to_string())?;
        let (key, rest) = match toks.split_first() {
            Some((
                Token {
                    tok: Tok::Path(p), ..
                },
                rest,
            )) => (resolve(p)?, rest),
            _ => return Err(format!("Invalid order_by clause {text:?}")),
        };
        let ascending = match rest {
            [] => true,
            [t] => match word(t).as_deref() {
                Some("ASC") => true,
                Some("DESC") => false,
                _ => return Err(format!("Invalid order_by clause {text:?}")),
            },
            _ => return Err(format!("Invalid order_by clause {text:?}")),
        };
        Ok(Self { key, ascending })
    }
}

/// Present values in the order asked, then missing ones.
fn present_first<T>(
    a: Option<T>,
    b: Option<T>,
    ascending: bool,
    cmp: fn(&T, &T) -> Ordering,
) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) if ascending => cmp(&x, &y),
        (Some(x), Some(y)) => cmp(&y, &x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn compare<T: Searchable>(a: &T, b: &T, o: &Order) -> Ordering {
    match &o.key {
        Key::Metric(_) | Key::Time(_) => present_first(
            a.number(&o.key),
            b.number(&o.key),
            o.ascending,
            f64::total_cmp,
        ),
        key => present_first(
            a.texts(key).first().copied(),
            b.texts(key).first().copied(),
            o.ascending,
            |x: &&str, y: &&str| x.cmp(y),
        ),
    }
}

/// Sorts by the orderings, then by `otherwise`. An entity without an ordering's value goes
/// last either way.
pub(crate) fn sort<T: Searchable>(
    items: &mut [T],
    orders: &[Order],
    otherwise: impl Fn(&T, &T) -> Ordering,
) {
    items.sort_by(|a, b| {
        orders
            .iter()
            .map(|o| compare(a, b, o))
            .find(|c| c.is_ne())
            .unwrap_or_else(|| otherwise(a, b))
    });
}

/// MLflow's order of runs when no ordering decides: newest first, then by id.
pub(crate) fn newest_run_first(a: &Run, b: &Run) -> Ordering {
    b.start_time
        .cmp(&a.start_time)
        .then_with(|| a.run_id.cmp(&b.run_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_store::runs::Metric;

    fn run(id: &str, acc: Option<f64>, lr: &str, status: &str, start: i64) -> Run {
        let mut r = Run {
            run_id: id.into(),
            run_name: format!("eval-{id}"),
            status: status.into(),
            start_time: start,
            lifecycle_stage: "active".into(),
            ..Run::default()
        };
        if let Some(v) = acc {
            r.metrics.insert(
                "acc".into(),
                Metric {
                    key: "acc".into(),
                    value: v,
                    timestamp: 0,
                    step: 0,
                },
            );
        }
        r.params.insert("lr".into(), lr.into());
        r.tags.insert("mlflow.runName".into(), format!("eval-{id}"));
        r
    }

    fn ids(runs: &[Run], filter: &str) -> Vec<String> {
        let f = Filter::parse(filter, run_key).unwrap();
        runs.iter()
            .filter(|r| f.matches(*r))
            .map(|r| r.run_id.clone())
            .collect()
    }

    #[test]
    fn filters_and_orders_like_mlflow() {
        let runs = vec![
            run("a", Some(0.95), "0.01", "FINISHED", 3),
            run("b", Some(0.80), "0.1", "FAILED", 2),
            run("c", None, "0.01", "FINISHED", 1),
        ];
        assert_eq!(ids(&runs, "metrics.acc > 0.9"), ["a"]);
        assert_eq!(
            ids(&runs, "metrics.acc != 0.9"),
            ["a", "b"],
            "no metric: no match"
        );
        assert_eq!(
            ids(
                &runs,
                "params.lr = '0.01' and attributes.status = \"FINISHED\""
            ),
            ["a", "c"]
        );
        assert_eq!(ids(&runs, "tags.`mlflow.runName` LIKE 'eval-%'").len(), 3);
        assert_eq!(ids(&runs, "tags.mlflow.runName ILIKE 'EVAL-B'"), ["b"]);
        assert_eq!(ids(&runs, "attributes.run_id IN ('a', 'c')"), ["a", "c"]);
        assert_eq!(ids(&runs, "run_name NOT IN ('eval-a')"), ["b", "c"]);
        assert_eq!(ids(&runs, "attributes.start_time >= 2"), ["a", "b"]);
        assert_eq!(ids(&runs, "metrics.acc > -1 AND params.lr != '0.1'"), ["a"]);
        assert_eq!(ids(&runs, "tags.missing IS NULL").len(), 3);
        assert_eq!(ids(&runs, ""), ["a", "b", "c"]);
        for bad in [
            "metrics.acc > 'x'",
            "params.lr > 1",
            "metrics.acc > 1 OR metrics.acc < 0",
            "widgets.x = 'y'",
            "attributes.color = 'red'",
            "metrics.acc >",
            "run_id IN ('a'",
        ] {
            assert!(Filter::parse(bad, run_key).is_err(), "{bad}");
        }
        let mut sorted = runs.clone();
        sort(
            &mut sorted,
            &[Order::parse("metrics.acc DESC", run_key).unwrap()],
            newest_run_first,
        );
        let order: Vec<&str> = sorted.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(order, ["a", "b", "c"], "a run without the metric goes last");
        sort(
            &mut sorted,
            &[Order::parse("metrics.`acc` ASC", run_key).unwrap()],
            newest_run_first,
        );
        let order: Vec<&str> = sorted.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(order, ["b", "a", "c"]);
        sort(&mut sorted, &[], newest_run_first);
        let order: Vec<&str> = sorted.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(order, ["a", "b", "c"], "newest first by default");
        assert!(Order::parse("metrics.acc SIDEWAYS", run_key).is_err());
    }
}
