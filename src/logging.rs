//! The log on stderr (env_logger, only here): env_logger's text lines for
//! terminals and journald, or with `--log-format json` one JSON object per
//! line, which Cloud Logging reads with its severity. GKE's agent files every
//! plain-text stderr line as ERROR, so a healthy run would look like a failing
//! one there.
//!
//! The `log` facade is unchanged everywhere else; a record's key-values
//! (`error!(outcome = "database_error", exit_code = 4; "...")`) become fields.

use std::io::Write as _;

use log::kv::{Error, Key, Value, VisitSource};

use crate::outcome::{self, Field, LogRecord, Outcome};

/// How stderr's log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// env_logger's human-readable lines: terminals, journald.
    #[default]
    Text,
    /// One JSON object per line, with the fields Cloud Logging reads
    /// (GKE files every plain-text stderr line as an error).
    Json,
}

/// Starts logging: the filter from `RUST_LOG` (default `info`), the lines in `format`.
pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|out, record| {
            let mut fields = Fields(Vec::new());
            // A field that cannot be read is left out, never the line.
            let _ = record.key_values().visit(&mut fields);
            let line = outcome::json(&LogRecord {
                severity: severity(record.level()),
                message: &record.args().to_string(),
                time: &now(),
                target: record.target(),
                fields: &fields.0,
            });
            writeln!(out, "{line}")
        });
    }
    builder.init();
}

/// Writes why the command line was not accepted (clap's or the validation's
/// message) to stderr: as it is in text, as one ERROR record in JSON. Not
/// through the log filter: `RUST_LOG=off` must not hide why nothing ran.
pub fn usage_error(format: LogFormat, text: &str, outcome: &Outcome) {
    match format {
        LogFormat::Text => eprint!("{text}"),
        LogFormat::Json => {
            let fields = [
                ("outcome".to_owned(), Field::Text(outcome.name().to_owned())),
                (
                    "exit_code".to_owned(),
                    Field::Unsigned(outcome.exit().code().into()),
                ),
            ];
            let line = outcome::json(&LogRecord {
                severity: severity(log::Level::Error),
                message: text.trim_end(),
                time: &now(),
                target: "user_purge::config",
                fields: &fields,
            });
            eprintln!("{line}");
        }
    }
}

/// The severity Cloud Logging knows for a level: it has no TRACE.
pub fn severity(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARNING",
        log::Level::Info => "INFO",
        log::Level::Debug | log::Level::Trace => "DEBUG",
    }
}

fn now() -> String {
    crate::timestamp::format_micros(std::time::SystemTime::now())
}

/// A record's key-values, as the JSON line's fields.
struct Fields(Vec<(String, Field)>);

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), Error> {
        // Integers first: every integer would also read as a float.
        let field = if let Some(n) = value.to_u64() {
            Field::Unsigned(n)
        } else if let Some(n) = value.to_i64() {
            Field::Signed(n)
        } else if let Some(b) = value.to_bool() {
            Field::Bool(b)
        } else if let Some(x) = value.to_f64() {
            Field::Float(x)
        } else {
            Field::Text(value.to_string())
        };
        self.0.push((key.as_str().to_owned(), field));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::kv::Source as _;

    #[test]
    fn levels_map_to_cloud_logging_severities() {
        use log::Level::*;
        let severities: Vec<_> = [Error, Warn, Info, Debug, Trace]
            .into_iter()
            .map(severity)
            .collect();
        assert_eq!(severities, ["ERROR", "WARNING", "INFO", "DEBUG", "DEBUG"]);
    }

    #[test]
    fn key_values_become_typed_fields() {
        let mut fields = Fields(Vec::new());
        let pairs: [(&str, Value); 4] = [
            ("outcome", Value::from("database_error")),
            ("exit_code", Value::from(4u8)),
            ("delta", Value::from(-2i64)),
            ("dry_run", Value::from(false)),
        ];
        pairs.visit(&mut fields).unwrap();
        assert_eq!(
            fields.0,
            [
                ("outcome".to_owned(), Field::Text("database_error".into())),
                ("exit_code".to_owned(), Field::Unsigned(4)),
                ("delta".to_owned(), Field::Signed(-2)),
                ("dry_run".to_owned(), Field::Bool(false)),
            ]
        );
    }
}
