//! `sysg schema [config|status|inspect|validate|logs]`: JSON Schemas. The config schema is
//! generated from `config::input_schema`; the output schemas are the documented contracts in
//! docs/schemas/, built into the binary.

use super::args::{SchemaArgs, SchemaKind};
use super::term::print;
use super::{error, EXIT_FAILURE, EXIT_OK};

/// The schema of `--json` output of a command, as shipped in docs/schemas/.
pub fn output_schema(kind: SchemaKind) -> Option<&'static str> {
    match kind {
        SchemaKind::Config => None,
        SchemaKind::Status => Some(include_str!("../../docs/schemas/status.schema.json")),
        SchemaKind::Inspect => Some(include_str!("../../docs/schemas/inspect.schema.json")),
        SchemaKind::Validate => Some(include_str!("../../docs/schemas/validate.schema.json")),
        SchemaKind::Logs => Some(include_str!("../../docs/schemas/logs.schema.json")),
    }
}

/// `sysg schema`
pub fn run(a: &SchemaArgs) -> i32 {
    let text = match output_schema(a.which) {
        Some(s) => s.to_string(),
        None => match crate::config::input_schema::schema_text() {
            Ok(s) => s,
            Err(e) => {
                error(e);
                return EXIT_FAILURE;
            }
        },
    };
    print(&text);
    if !text.ends_with('\n') {
        print("\n");
    }
    EXIT_OK
}
