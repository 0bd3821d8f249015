//! MLflow runs: what evaluation and experiment tracking log (status, params, metrics, tags,
//! inputs). A run is kept as one document; [`Run::apply`] is the one place its changes are
//! decided, and each backend calls it inside a transaction, so concurrent loggers never lose
//! one another's writes. Metric history is a table of its own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::StoreError;

/// A run's lifecycle stage when it is not deleted.
pub const ACTIVE: &str = "active";
/// A deleted (restorable) run's lifecycle stage.
pub const DELETED: &str = "deleted";

/// Run statuses MLflow knows.
pub const STATUSES: &[&str] = &["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"];

/// Longest param value MLflow accepts.
pub const MAX_PARAM_VALUE: usize = 6_000;

/// One metric value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Name.
    pub key: String,
    /// Value; NaN and infinities are kept (as text in the document).
    #[serde(with = "any_f64")]
    pub value: f64,
    /// When it was measured (ms).
    pub timestamp: i64,
    /// Step.
    pub step: i64,
}

impl Metric {
    /// MLflow's "latest" value of a key: the highest step, then timestamp, then value.
    fn supersedes(&self, other: &Metric) -> bool {
        (self.step, self.timestamp)
            .cmp(&(other.step, other.timestamp))
            .then(self.value.total_cmp(&other.value))
            .is_ge()
    }
}

/// A run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Run {
    /// 32 hex characters.
    pub run_id: String,
    /// The experiment's id.
    pub experiment_id: String,
    /// Display name.
    pub run_name: String,
    /// Who started it.
    pub user_id: String,
    /// One of [`STATUSES`].
    pub status: String,
    /// Start (ms).
    pub start_time: i64,
    /// End (ms), once ended.
    pub end_time: Option<i64>,
    /// [`ACTIVE`] or [`DELETED`].
    pub lifecycle_stage: String,
    /// Where its artifacts would be.
    pub artifact_uri: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Params (write-once).
    pub params: BTreeMap<String, String>,
    /// The latest value of each metric.
    pub metrics: BTreeMap<String, Metric>,
    /// Datasets logged as inputs (MLflow's `DatasetInput` JSON), one per dataset digest+name.
    pub dataset_inputs: Vec<Value>,
    /// Logged models used as inputs (`{"model_id": …}`).
    pub model_inputs: Vec<Value>,
}

/// A change to a run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunChange {
    /// Status, end time and name (what is `None` stays).
    Update {
        /// New status.
        status: Option<String>,
        /// New end time.
        end_time: Option<i64>,
        /// New name.
        run_name: Option<String>,
    },
    /// Metrics, params and tags at once (`log-batch`; also each single log call).
    Log {
        /// Metric values.
        metrics: Vec<Metric>,
        /// Params (a param already logged with another value is an error).
        params: Vec<(String, String)>,
        /// Tags.
        tags: Vec<(String, String)>,
    },
    /// Removes a tag.
    DeleteTag(String),
    /// Inputs.
    LogInputs {
        /// Dataset inputs.
        datasets: Vec<Value>,
        /// Model inputs.
        models: Vec<Value>,
    },
    /// Marks the run deleted.
    Delete,
    /// Makes a deleted run active again.
    Restore,
}

impl RunChange {
    /// The metric values to append to the history.
    pub fn metrics(&self) -> &[Metric] {
        match self {
            RunChange::Log { metrics, .. } => metrics,
            _ => &[],
        }
    }
}

impl Run {
    /// Applies a change; an error leaves the run as it was.
    pub fn apply(&mut self, change: &RunChange) -> Result<(), StoreError> {
        let deleted = self.lifecycle_stage == DELETED;
        if deleted && !matches!(change, RunChange::Restore | RunChange::Delete) {
            return Err(StoreError::invalid(format!(
                "The run {} must be in the 'active' state. Current state is deleted.",
                self.run_id
            )));
        }
        match change {
            RunChange::Update {
                status,
                end_time,
                run_name,
            } => {
                if let Some(s) = status {
                    if !STATUSES.contains(&s.as_str()) {
                        return Err(StoreError::invalid(format!("Invalid run status {s:?}")));
                    }
                    self.status = s.clone();
                }
                if end_time.is_some() {
                    self.end_time = *end_time;
                }
                if let Some(n) = run_name {
                    self.run_name = n.clone();
                    self.tags.insert("mlflow.runName".into(), n.clone());
                }
            }
            RunChange::Log {
                metrics,
                params,
                tags,
            } => {
                for (k, v) in params {
                    if v.chars().count() > MAX_PARAM_VALUE {
                        return Err(StoreError::invalid(format!(
                            "Param value for {k:?} is longer than {MAX_PARAM_VALUE} characters"
                        )));
                    }
                    match self.params.get(k) {
                        Some(old) if old != v => {
                            return Err(StoreError::invalid(format!(
                                "Changing param values is not allowed. Param with key='{k}' was \
                                 already logged with value='{old}' for run ID='{}'. Attempted \
                                 logging new value '{v}'.",
                                self.run_id
                            )));
                        }
                        _ => {}
                    }
                }
                for (k, v) in params {
                    self.params.insert(k.clone(), v.clone());
                }
                for m in metrics {
                    match self.metrics.get(&m.key) {
                        Some(old) if !m.supersedes(old) => {}
                        _ => {
                            self.metrics.insert(m.key.clone(), m.clone());
                        }
                    }
                }
                for (k, v) in tags {
                    if k == "mlflow.runName" {
                        self.run_name = v.clone();
                    }
                    self.tags.insert(k.clone(), v.clone());
                }
            }
            RunChange::DeleteTag(k) => {
                if self.tags.remove(k).is_none() {
                    return Err(StoreError::not_found(format!(
                        "No tag with name: {k} in run with id {}",
                        self.run_id
                    )));
                }
            }
            RunChange::LogInputs { datasets, models } => {
                for d in datasets {
                    let same = |x: &Value| {
                        x.pointer("/dataset/name") == d.pointer("/dataset/name")
                            && x.pointer("/dataset/digest") == d.pointer("/dataset/digest")
                    };
                    match self.dataset_inputs.iter_mut().find(|x| same(x)) {
                        Some(slot) => *slot = d.clone(),
                        None => self.dataset_inputs.push(d.clone()),
                    }
                }
                for m in models {
                    if !self.model_inputs.contains(m) {
                        self.model_inputs.push(m.clone());
                    }
                }
            }
            RunChange::Delete => self.lifecycle_stage = DELETED.into(),
            RunChange::Restore => self.lifecycle_stage = ACTIVE.into(),
        }
        Ok(())
    }

    /// The run as its stored document.
    pub fn to_doc(&self) -> Result<String, StoreError> {
        serde_json::to_string(self).map_err(|e| StoreError::internal(format!("run document: {e}")))
    }

    /// A run from its stored document.
    pub fn from_doc(doc: &str) -> Result<Self, StoreError> {
        serde_json::from_str(doc).map_err(|e| StoreError::internal(format!("run document: {e}")))
    }
}

/// f64 in JSON, with NaN and the infinities as the strings MLflow's JSON uses.
mod any_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if *v > 0.0 {
            s.serialize_str("Infinity")
        } else {
            s.serialize_str("-Infinity")
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Num(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(match Either::deserialize(d)? {
            Either::Num(n) => n,
            Either::Text(t) => match t.as_str() {
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                _ => f64::NAN,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(key: &str, value: f64, timestamp: i64, step: i64) -> Metric {
        Metric {
            key: key.into(),
            value,
            timestamp,
            step,
        }
    }

    #[test]
    fn changes_follow_mlflow_rules() {
        let mut run = Run {
            run_id: "r1".into(),
            lifecycle_stage: ACTIVE.into(),
            status: "RUNNING".into(),
            ..Run::default()
        };
        let log = |metrics, params: &[(&str, &str)]| RunChange::Log {
            metrics,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tags: Vec::new(),
        };
        run.apply(&log(
            vec![metric("acc", 0.5, 10, 1), metric("acc", 0.9, 5, 2)],
            &[("lr", "0.1")],
        ))
        .unwrap();
        run.apply(&log(vec![metric("acc", 0.7, 99, 1)], &[("lr", "0.1")]))
            .unwrap();
        assert_eq!(
            run.metrics["acc"].value, 0.9,
            "the highest step is the latest"
        );
        let err = run.apply(&log(Vec::new(), &[("lr", "0.2"), ("batch", "8")]));
        assert!(err.unwrap_err().message.contains("Changing param values"));
        assert!(
            !run.params.contains_key("batch"),
            "a refused change changes nothing"
        );
        run.apply(&RunChange::Delete).unwrap();
        assert!(run.apply(&log(Vec::new(), &[("batch", "8")])).is_err());
        run.apply(&RunChange::Restore).unwrap();
        run.apply(&log(vec![metric("loss", f64::NAN, 1, 0)], &[]))
            .unwrap();
        let back = Run::from_doc(&run.to_doc().unwrap()).unwrap();
        assert!(back.metrics["loss"].value.is_nan());
        assert_eq!(back.params, run.params);
        let bad = RunChange::Update {
            status: Some("DONE".into()),
            end_time: None,
            run_name: None,
        };
        assert!(run.apply(&bad).is_err());
    }
}
