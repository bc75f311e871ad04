//! An artifact's columns read into plain vectors with polars, by name: strings,
//! unsigned integers, floats and booleans, a missing value read as the type's default
//! (floats keep theirs as `None`).

use polars::prelude::*;

/// Column `name` of `df` as strings (nulls empty).
pub fn strings(df: &DataFrame, name: &str) -> PolarsResult<Vec<String>> {
    Ok(df
        .column(name)?
        .as_materialized_series()
        .str()?
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect())
}

/// Column `name` of `df` as `u32`s (nulls 0).
pub fn u32s(df: &DataFrame, name: &str) -> PolarsResult<Vec<u32>> {
    Ok(df
        .column(name)?
        .as_materialized_series()
        .u32()?
        .iter()
        .map(Option::unwrap_or_default)
        .collect())
}

/// Column `name` of `df` as floats.
pub fn floats(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<f64>>> {
    Ok(df
        .column(name)?
        .as_materialized_series()
        .f64()?
        .iter()
        .collect())
}

/// Column `name` of `df` as booleans (nulls false).
pub fn bools(df: &DataFrame, name: &str) -> PolarsResult<Vec<bool>> {
    Ok(df
        .column(name)?
        .as_materialized_series()
        .bool()?
        .iter()
        .map(Option::unwrap_or_default)
        .collect())
}
