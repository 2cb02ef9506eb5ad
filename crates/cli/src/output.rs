//! Tables for people, JSON for programs.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Prints `rows` (JSON objects) as a table with the given columns, or the whole value as JSON.
pub fn print_list(format: Format, rows: &[Value], columns: &[(&str, &str)]) {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(rows).unwrap_or_default()),
        Format::Table => {
            let mut t = Table::new();
            t.load_style(UTF8_FULL_CONDENSED);
            t.set_header(columns.iter().map(|(title, _)| *title));
            for r in rows {
                t.add_row(columns.iter().map(|(_, key)| cell(&r[*key])));
            }
            println!("{t}");
        }
    }
}

/// Prints one record as `key: value` lines, or as JSON.
pub fn print_record(format: Format, v: &Value, fields: &[(&str, &str)]) {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
        Format::Table => {
            let width = fields.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
            for (title, key) in fields {
                println!("{title:width$}  {}", cell(&v[*key]));
            }
        }
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}
