//! Small helpers for the Arrow tables stages read and write.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, StringArray, UInt32Array};
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

/// A Rust type stored as one Arrow column type.
pub trait ArrowScalar: Copy {
    const DATA_TYPE: DataType;
    /// A column of `values`.
    fn column(values: impl Iterator<Item = Self>) -> ArrayRef;
}

impl ArrowScalar for f64 {
    const DATA_TYPE: DataType = DataType::Float64;
    fn column(values: impl Iterator<Item = Self>) -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(values))
    }
}

impl ArrowScalar for u32 {
    const DATA_TYPE: DataType = DataType::UInt32;
    fn column(values: impl Iterator<Item = Self>) -> ArrayRef {
        Arc::new(UInt32Array::from_iter_values(values))
    }
}

/// The text of a field's doc comment lines, as a column description.
pub fn doc_text(lines: &[&str]) -> String {
    lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
}

/// Declares a row type whose table follows from its fields: each field is a column of
/// its name, its type ([`ArrowScalar`]) and its doc comment as the description. The type
/// gets `schema()` and `columns(rows)`, so a column is declared once.
macro_rules! table_row {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[doc = $doc:literal])* $field_vis:vis $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[doc = $doc])* $field_vis $field: $ty, )*
        }

        impl $name {
            /// The Arrow schema of a table of these rows.
            pub fn schema() -> arrow::datatypes::SchemaRef {
                $crate::table::schema(vec![$(
                    $crate::table::column(
                        stringify!($field),
                        <$ty as $crate::table::ArrowScalar>::DATA_TYPE,
                        &$crate::table::doc_text(&[$($doc),*]),
                    ),
                )*])
            }

            /// The columns of a table of `rows`, in schema order.
            pub fn columns(rows: &[Self]) -> Vec<arrow::array::ArrayRef> {
                vec![$(
                    <$ty as $crate::table::ArrowScalar>::column(rows.iter().map(|r| r.$field)),
                )*]
            }
        }
    };
}
pub(crate) use table_row;
