//! MLflow evaluation datasets: a header and records, each record kept as the JSON dict the MLflow
//! client reads (`DatasetRecord.from_dict`). A record's identity is its inputs: upserting
//! records with inputs already present merges them ([`merge_record`]), as MLflow does. The
//! rules live here; each backend applies them inside one transaction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::StoreError;

/// Most records one upsert may carry.
pub const MAX_UPSERT: usize = 1_000;

/// A dataset's header.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EvalDataset {
    /// `d-` + 32 hex characters.
    pub dataset_id: String,
    /// Name (unique).
    pub name: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// The fields its records have (`{"inputs": {...}, "expectations": {...}, "version"}`).
    pub schema: Option<Value>,
    /// `{"num_records": n}` once it has records.
    pub profile: Option<Value>,
    /// Changes with every change of the dataset.
    pub digest: String,
    /// Created (ms).
    pub created_time: i64,
    /// Last changed (ms).
    pub last_update_time: i64,
    /// Who created it (the `mlflow.user` tag).
    pub created_by: Option<String>,
    /// Who changed it last.
    pub last_updated_by: Option<String>,
    /// The experiments it belongs to.
    pub experiment_ids: Vec<String>,
}

impl EvalDataset {
    /// Records a change at `now`: a new digest, and the schema and record count after it.
    pub fn touched(&mut self, now: i64, records: &[&Value], num_records: u64) {
        self.last_update_time = now;
        let digest = Sha256::digest(format!("{}:{now}", self.name).as_bytes());
        self.digest = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        let mut schema = self.schema.take().unwrap_or_else(
            || json!({"inputs": {}, "outputs": {}, "expectations": {}, "version": "1.0"}),
        );
        for r in records {
            for part in ["inputs", "outputs", "expectations"] {
                if let (Some(Value::Object(fields)), Some(slot)) = (
                    r.get(part),
                    schema.get_mut(part).and_then(Value::as_object_mut),
                ) {
                    for (k, v) in fields {
                        slot.entry(k.clone())
                            .or_insert_with(|| Value::String(json_type(v).into()));
                    }
                }
            }
        }
        self.schema = Some(schema);
        self.profile = (num_records > 0).then(|| json!({"num_records": num_records}));
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A change to a dataset's header.
#[derive(Debug, Clone, PartialEq)]
pub enum DatasetChange {
    /// Sets tags (merged into the existing ones; `None` removes one).
    SetTags(BTreeMap<String, Option<String>>),
    /// Removes a tag.
    DeleteTag(String),
    /// Adds it to experiments.
    AddExperiments(Vec<String>),
    /// Removes it from experiments.
    RemoveExperiments(Vec<String>),
}

impl EvalDataset {
    /// Applies a header change at `now`.
    pub fn apply(&mut self, change: &DatasetChange, now: i64) {
        match change {
            DatasetChange::SetTags(tags) => {
                for (k, v) in tags {
                    match v {
                        Some(v) => self.tags.insert(k.clone(), v.clone()),
                        None => self.tags.remove(k),
                    };
                }
            }
            DatasetChange::DeleteTag(k) => {
                self.tags.remove(k);
            }
            DatasetChange::AddExperiments(ids) => {
                for id in ids {
                    if !self.experiment_ids.contains(id) {
                        self.experiment_ids.push(id.clone());
                    }
                }
            }
            DatasetChange::RemoveExperiments(ids) => {
                self.experiment_ids.retain(|e| !ids.contains(e))
            }
        }
        self.last_update_time = now;
    }

    /// The header as its stored document.
    pub fn to_doc(&self) -> Result<Value, StoreError> {
        serde_json::to_value(self)
            .map_err(|e| StoreError::internal(format!("dataset document: {e}")))
    }

    /// A header from its stored document.
    pub fn from_doc(v: Value) -> Result<Self, StoreError> {
        serde_json::from_value(v)
            .map_err(|e| StoreError::internal(format!("dataset document: {e}")))
    }
}

/// Records to upsert into a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordUpsert {
    /// The dataset.
    pub dataset_id: String,
    /// Records as the client sent them (checked with [`check_record`]).
    pub records: Vec<Value>,
    /// Ids for the records that turn out new, one per record at least.
    pub fresh_ids: Vec<String>,
    /// When (ms).
    pub now: i64,
}

/// The identity of a record: a hash of its inputs with keys sorted.
pub fn input_hash(record: &Value) -> String {
    // serde_json's map keeps keys sorted, so equal inputs give equal text.
    let text = record
        .get("inputs")
        .map_or_else(|| "{}".into(), Value::to_string);
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a record from a client: an object whose `inputs` is an object.
pub fn check_record(record: &Value) -> Result<(), StoreError> {
    match record.get("inputs") {
        Some(Value::Object(_)) => Ok(()),
        _ => Err(StoreError::invalid(
            "each dataset record needs 'inputs', an object",
        )),
    }
}

/// What an upsert does with one record: `existing` is the stored record with the same inputs,
/// if any. Returns the record to store. New records get an id and their times; a match keeps
/// its id, creation and source, takes the new outputs, and merges expectations and tags.
pub fn merge_record(
    dataset_id: &str,
    existing: Option<Value>,
    new: &Value,
    new_id: impl FnOnce() -> String,
    now: i64,
) -> Value {
    let user = new.pointer("/tags/mlflow.user").cloned();
    match existing {
        Some(mut old) => {
            if let Some(outputs) = new.get("outputs") {
                old["outputs"] = outputs.clone();
            }
            for part in ["expectations", "tags"] {
                if let Some(Value::Object(add)) = new.get(part) {
                    if !old[part].is_object() {
                        old[part] = Value::Object(Map::new());
                    }
                    if let Some(slot) = old[part].as_object_mut() {
                        slot.extend(add.clone());
                    }
                }
            }
            old["last_update_time"] = json!(now);
            if let Some(u) = user {
                old["last_updated_by"] = u;
            }
            old
        }
        None => {
            let mut r = Map::new();
            r.insert("dataset_record_id".into(), json!(new_id()));
            r.insert("dataset_id".into(), json!(dataset_id));
            for key in ["inputs", "outputs", "expectations", "tags", "source"] {
                if let Some(v) = new.get(key).filter(|v| !v.is_null()) {
                    r.insert(key.into(), v.clone());
                }
            }
            if let Some(Value::Object(source)) = new.get("source") {
                if let Some(t) = source.get("source_type") {
                    r.insert("source_type".into(), t.clone());
                }
                let id = source
                    .get("source_data")
                    .and_then(|d| d.get("trace_id").or_else(|| d.get("source_id")));
                if let Some(id) = id {
                    r.insert("source_id".into(), id.clone());
                }
            }
            r.insert("created_time".into(), json!(now));
            r.insert("last_update_time".into(), json!(now));
            if let Some(u) = user {
                r.insert("created_by".into(), u.clone());
                r.insert("last_updated_by".into(), u);
            }
            Value::Object(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_merge_by_inputs() {
        let a = json!({"inputs": {"q": "x", "k": 1}, "expectations": {"answer": "y"}, "tags": {"mlflow.user": "ann"}});
        let same_inputs =
            json!({"inputs": {"k": 1, "q": "x"}, "expectations": {"facts": ["f"]}, "outputs": "z"});
        assert_eq!(
            input_hash(&a),
            input_hash(&same_inputs),
            "key order does not matter"
        );
        let first = merge_record("d-1", None, &a, || "dr-1".into(), 10);
        assert_eq!(first["dataset_record_id"], "dr-1");
        assert_eq!(first["created_by"], "ann");
        let merged = merge_record("d-1", Some(first), &same_inputs, unreachable_id, 20);
        assert_eq!(merged["dataset_record_id"], "dr-1");
        assert_eq!(
            merged["expectations"],
            json!({"answer": "y", "facts": ["f"]})
        );
        assert_eq!(merged["outputs"], "z");
        assert_eq!(
            (
                merged["created_time"].as_i64(),
                merged["last_update_time"].as_i64()
            ),
            (Some(10), Some(20))
        );
        assert!(check_record(&json!({"inputs": "not an object"})).is_err());
        let mut d = EvalDataset {
            name: "qa".into(),
            ..EvalDataset::default()
        };
        d.touched(5, &[&merged], 1);
        assert_eq!(
            d.schema.as_ref().and_then(|s| s.pointer("/inputs/k")),
            Some(&json!("integer"))
        );
        assert_eq!(d.profile, Some(json!({"num_records": 1})));
        let before = d.digest.clone();
        d.touched(6, &[], 1);
        assert_ne!(d.digest, before);
    }

    fn unreachable_id() -> String {
        String::from("never used: the record exists")
    }
}
