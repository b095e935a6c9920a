//! An ETL job as a Dagster user writes one: extract readings given in run config, clean
//! them in a nested graph, split the valid rows from the rejected ones (an optional output:
//! only when some are rejected), load the valid rows into a warehouse (a resource,
//! configured in run config) and quarantine the rest.
//!
//! ```text
//! cargo run --example etl                     # embedded executor; warehouse in /tmp
//! cargo run --example etl -- graph --format mermaid
//! cargo run --example etl -- run -c more.yaml # e.g. a Dask cluster, another warehouse
//! ```
//!
//! Steps: `extract`, `clean.drop_missing`, `clean.dedupe`, `validate`, `load`,
//! `quarantine` (skipped when no row is rejected).

use std::path::PathBuf;
use std::process::ExitCode;

use dagster_dask::op::BoxError;
use dagster_dask::prelude::*;
use serde::{Deserialize, Serialize};

/// One reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// The station.
    pub station: String,
    /// Degrees Celsius, when the sensor answered.
    pub temp_c: Option<f64>,
}

/// A directory of CSV tables: where `load` writes.
#[derive(Debug)]
pub struct Warehouse {
    root: PathBuf,
}

/// `resources.warehouse.config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarehouseConfig {
    /// The warehouse's directory (`{env: VAR}` allowed).
    pub root: PathBuf,
}

impl Resource for Warehouse {
    type Config = WarehouseConfig;

    fn build(config: WarehouseConfig, _ctx: &ResourceContext) -> Result<Self, BoxError> {
        std::fs::create_dir_all(&config.root)
            .map_err(|e| format!("cannot create {}: {e}", config.root.display()))?;
        Ok(Warehouse { root: config.root })
    }
}

impl Warehouse {
    /// Writes `rows` as table `name`; returns how many.
    fn write(&self, name: &str, rows: &[Reading]) -> std::io::Result<usize> {
        let mut csv = String::from("station,temp_c\n");
        for r in rows {
            let temp = r.temp_c.map(|t| t.to_string()).unwrap_or_default();
            csv.push_str(&format!("{},{temp}\n", r.station));
        }
        std::fs::write(self.root.join(format!("{name}.csv")), csv)?;
        Ok(rows.len())
    }
}

/// Parses `station:temp` items (`temp` may be empty: the sensor did not answer).
#[op]
fn extract(ctx: &OpContext, source: Vec<String>) -> Vec<Reading> {
    ctx.log()
        .info(format!("extracting {} readings", source.len()));
    source
        .iter()
        .map(|item| {
            let (station, temp) = item.split_once(':').unwrap_or((item, ""));
            Reading {
                station: station.to_owned(),
                temp_c: temp.parse().ok(),
            }
        })
        .collect()
}

#[op]
fn drop_missing(rows: Vec<Reading>) -> Vec<Reading> {
    rows.into_iter().filter(|r| r.temp_c.is_some()).collect()
}

#[op]
fn dedupe(rows: Vec<Reading>) -> Vec<Reading> {
    let mut seen = Vec::new();
    for r in rows {
        if !seen.contains(&r) {
            seen.push(r);
        }
    }
    seen
}

graph! {
    /// Drops readings without a temperature, then duplicates.
    fn clean(raw: Vec<Reading>) -> Vec<Reading> {
        let present = drop_missing(raw);
        dedupe(present)
    }
}

/// Valid readings (-90 to 60 °C), and the rejected ones when there are any.
#[op(out(valid, rejected(optional)))]
fn validate(rows: Vec<Reading>) -> (Vec<Reading>, Option<Vec<Reading>>) {
    let (valid, rejected): (Vec<Reading>, Vec<Reading>) = rows
        .into_iter()
        .partition(|r| r.temp_c.is_some_and(|t| (-90.0..=60.0).contains(&t)));
    (valid, (!rejected.is_empty()).then_some(rejected))
}

#[op(retries = 2)]
fn load(ctx: &OpContext, warehouse: &Warehouse, rows: Vec<Reading>) -> Result<usize, BoxError> {
    let n = warehouse.write("readings", &rows)?;
    ctx.log().info(format!("loaded {n} readings"));
    Ok(n)
}

#[op]
fn quarantine(warehouse: &Warehouse, rows: Vec<Reading>) -> Result<usize, BoxError> {
    Ok(warehouse.write("quarantine", &rows)?)
}

job! {
    /// Extract, clean, validate, then load the valid readings and quarantine the rest.
    #[job(resources(warehouse = Warehouse))]
    pub fn etl() {
        let raw = extract(from_config!());
        let cleaned = clean(raw);
        let (valid, rejected) = validate(cleaned);
        load(valid);
        quarantine(rejected);
    }
}

/// The readings and the warehouse, unless `-c` files say otherwise.
const RUN_CONFIG: &str = "
ops:
  extract:
    inputs:
      source: ['oslo:4.5', 'lima:19', 'oslo:4.5', 'nome:', 'vostok:-120']
resources:
  warehouse:
    config: { root: /tmp/dagster-dask/warehouse }
";

/// The job binary's command line.
pub fn main() -> ExitCode {
    dagster_dask::main_with_defaults(etl(), RUN_CONFIG)
}
