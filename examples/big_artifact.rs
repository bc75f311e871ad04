//! Publishes a large synthetic artifact through the store API, for benchmarking digest
//! verification (`scripts/bench-core.sh`): `big_artifact STORE_DIR MEBIBYTES`.

use std::collections::BTreeMap;
use std::sync::Arc;

use accord::store::artifact::NewArtifact;
use accord::store::{StageKey, Store};
use arrow::array::{Array, BinaryArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(mib)) = (
        args.get(1),
        args.get(2).and_then(|m| m.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: big_artifact STORE_DIR MEBIBYTES");
        std::process::exit(2);
    };
    // Incompressible rows of 1 MiB each, so the Parquet file is as large as asked.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let rows: Vec<Vec<u8>> = (0..mib)
        .map(|_| {
            (0..1 << 17)
                .flat_map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()
                })
                .collect()
        })
        .collect();
    let array: Arc<dyn Array> = Arc::new(BinaryArray::from_iter_values(rows.iter()));
    let schema = Arc::new(Schema::new(vec![Field::new(
        "blob",
        DataType::Binary,
        false,
    )]));
    let batch = RecordBatch::try_new(schema, vec![array]).expect("valid batch");
    let parts = StageKey {
        kind: "benchmark".into(),
        version: 1,
        params: serde_json::json!({"mebibytes": mib}),
        seed: 0,
        inputs: BTreeMap::new(),
        files: BTreeMap::new(),
        embedded: BTreeMap::new(),
        models: BTreeMap::new(),
        backend: None,
    };
    let key = parts.hash();
    let store = Store::at(dir);
    let meta = store
        .publish(NewArtifact {
            key: &key,
            stage: "big",
            parts: &parts,
            batch: &batch,
            seconds: 0.0,
            files: None,
        })
        .expect("published");
    println!("{}", store.data_path(&meta.key).display());
}
