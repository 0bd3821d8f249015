//! Registered scorers (MLflow's `scorer.register()`): versions of a named scorer per
//! experiment, as the client serialized them, and each scorer's online configuration (sample
//! rate and filter) as `.start()` / `.update()` / `.stop()` set it.

use serde::{Deserialize, Serialize};

/// One registered version of a scorer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorerVersion {
    /// Stable across the scorer's versions.
    pub scorer_id: String,
    /// The experiment's id.
    pub experiment_id: String,
    /// Name.
    pub name: String,
    /// 1, 2, … per name and experiment.
    pub version: i64,
    /// The client's serialization (JSON text), kept as sent.
    pub serialized: String,
    /// Registered (ms).
    pub creation_time: i64,
}

/// A scorer's online configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnlineConfig {
    /// Its id.
    pub config_id: String,
    /// The scorer it configures.
    pub scorer_id: String,
    /// The experiment whose new traces it samples.
    pub experiment_id: String,
    /// Fraction of traces scored (0 stops it).
    pub sample_rate: f64,
    /// Which traces (MLflow's trace filter).
    pub filter_string: Option<String>,
}
