//! Tables for people, JSON and CSV for programs.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    /// Comma-separated values (RFC 4180), a header line first.
    Csv,
}

/// RFC 4180: quoted when it holds a comma, quote or line break; quotes doubled.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_line<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    cells.map(csv_field).collect::<Vec<_>>().join(",")
}

/// Prints `rows` (JSON objects) as a table with the given columns, or the whole value as JSON.
pub fn print_list(format: Format, rows: &[Value], columns: &[(&str, &str)]) {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(rows).unwrap_or_default()),
        Format::Csv => {
            println!("{}", csv_line(columns.iter().map(|(t, _)| *t)));
            for r in rows {
                let cells: Vec<String> = columns.iter().map(|(_, k)| cell(&r[*k])).collect();
                println!("{}", csv_line(cells.iter().map(String::as_str)));
            }
        }
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
        Format::Csv => print_list(format, std::slice::from_ref(v), fields),
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

#[cfg(test)]
mod tests {
    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(super::csv_field("plain"), "plain");
        assert_eq!(super::csv_field("a,b"), "\"a,b\"");
        assert_eq!(super::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(super::csv_field("two\nlines"), "\"two\nlines\"");
    }
}
