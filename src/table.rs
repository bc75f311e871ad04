//! Small helpers for the Arrow tables stages read and write.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::stage::{Input, StageError};

/// A column with a `description`, which `schemas/artifacts.md` and `meta.json` show.
pub fn column(name: &str, data_type: DataType, description: &str) -> Field {
    Field::new(name, data_type, false).with_metadata(HashMap::from([(
        "description".to_string(),
        description.to_string(),
    )]))
}

/// A list column's type, with nullable items of type `item`.
pub fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

/// A list-of-strings column.
pub fn string_lists<'a>(rows: impl Iterator<Item = &'a Vec<String>>) -> Arc<dyn Array> {
    let mut builder = arrow::array::ListBuilder::new(arrow::array::StringBuilder::new());
    for row in rows {
        builder.append_value(row.iter().map(Some));
    }
    Arc::new(builder.finish())
}

/// Input column `name` as `T` (e.g. `UInt32Array`), or an error naming what is missing.
pub fn typed_column<'a, T: Array + 'static>(
    input: &'a Input,
    name: &str,
    expected: &'static str,
) -> Result<&'a T, StageError> {
    input
        .batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| StageError::MissingColumn {
            input: input.name.clone(),
            column: name.into(),
            expected,
        })
}

/// A schema of described columns.
pub fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}

/// A batch from string and float columns, in the order of `schema`.
pub fn batch(schema: &SchemaRef, columns: Vec<Arc<dyn Array>>) -> Result<RecordBatch, StageError> {
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// A string column as an Arrow array.
pub fn strings<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> Arc<dyn Array> {
    Arc::new(StringArray::from_iter_values(values))
}

/// A float column as an Arrow array.
pub fn floats(values: impl IntoIterator<Item = f64>) -> Arc<dyn Array> {
    Arc::new(Float64Array::from_iter_values(values))
}

/// The string column `name` of an input table.
pub fn string_column<'a>(input: &'a Input, name: &str) -> Result<&'a StringArray, StageError> {
    input
        .batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| StageError::MissingColumn {
            input: input.name.clone(),
            column: name.to_string(),
            expected: "utf8",
        })
}

/// Markdown documenting a kind's output columns.
pub fn schema_markdown(kind: &str, summary: &str, schema: &Schema) -> String {
    let mut out = format!(
        "## `{kind}`\n\n{summary}\n\n| column | type | description |\n| --- | --- | --- |\n"
    );
    for field in schema.fields() {
        let description = field
            .metadata()
            .get("description")
            .map(String::as_str)
            .unwrap_or("");
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            field.name(),
            field.data_type(),
            description
        ));
    }
    out
}
