//! The JSON Schema of `systemg.yaml`, for editors (yaml-language-server) and `sysg schema`.
//!
//! It is derived from the validated types of `schema.rs`, the one declaration of every
//! setting: a field's doc comment is its description, and its `#[schemars(...)]` attributes
//! give the written form (`input_forms.rs`: durations as text or seconds, sizes with units,
//! `command` xor `exec`, `depends_on` as names or mappings) and the key's optionality. The
//! parser stays the authority (it also checks what a schema cannot: dependency cycles, env
//! files, cron expressions, time zones); a test keeps the two in agreement on every example
//! and on the malformed corpus, and another keeps docs/schemas/systemg.schema.json equal to
//! what this generates.
//!
//! Adding a setting: declare the field in `schema.rs` with its doc comment (and a
//! `#[schemars(with = ...)]` when the written form differs or the key may be left out), read
//! it in `build.rs`/`sections.rs`, then regenerate the shipped file (`sysg schema >
//! docs/schemas/systemg.schema.json`).

use schemars::generate::SchemaSettings;
use serde_json::Value;
use thiserror::Error;

use super::schema::Config;

/// Failures producing the schema.
#[derive(Debug, Error)]
pub enum SchemaError {
    #[error("cannot render the config schema: {0}")]
    Render(#[from] serde_json::Error),
}

/// Where the shipped schema lives, relative to the repository.
pub const SHIPPED_PATH: &str = "docs/schemas/systemg.schema.json";

/// The schema as a JSON value.
pub fn schema() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<Config>();
    let mut v = schema.to_value();
    drop_null(&mut v);
    v
}

/// Optional fields are absent, never null: YAML's `key:` with no value is an error for every
/// field, so the `null` alternative that schemars adds for `Option` is removed.
fn drop_null(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                if types.len() == 2 && types.iter().any(|t| t == "null") {
                    types.retain(|t| t != "null");
                    let t = types.remove(0);
                    map.insert("type".into(), t);
                }
            }
            for key in ["anyOf", "oneOf"] {
                let collapsed = match map.get_mut(key) {
                    Some(Value::Array(alts)) => {
                        alts.retain(|a| {
                            a.get("type").is_none_or(|t| t != "null")
                                || a.as_object().is_some_and(|o| o.len() > 1)
                        });
                        (alts.len() == 1).then(|| alts.remove(0))
                    }
                    _ => None,
                };
                if let Some(Value::Object(only)) = collapsed {
                    map.remove(key);
                    for (k, x) in only {
                        map.entry(k).or_insert(x);
                    }
                }
            }
            map.values_mut().for_each(drop_null);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}

/// The schema as pretty JSON text with a final newline (the shipped file's form).
pub fn schema_text() -> Result<String, SchemaError> {
    let mut s = serde_json::to_string_pretty(&schema())?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_fields_are_not_nullable() {
        let v = schema();
        let text = v.to_string();
        assert!(!text.contains("\"null\""), "{text}");
        let svc = &v["$defs"]["ServiceFile"];
        assert_eq!(svc["additionalProperties"], false);
        assert!(svc["properties"]["command"].is_object());
        assert!(svc["required"].is_null() || svc["required"] == serde_json::json!([]));
    }
}
