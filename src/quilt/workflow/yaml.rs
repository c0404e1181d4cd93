//! YAML read as PyYAML's `safe_load` reads it, since that is how quilt3 reads a
//! workflows config: YAML 1.1 scalars (`yes`/`no`/`on`/`off` are booleans, `1.0` a
//! float, `0755` an octal integer, `2024-01-01` a date), merge keys (`<<`), anchors
//! and aliases, the last of two equal keys winning, exactly one document.
//!
//! The events come from `saphyr-parser`; what each scalar means is decided here.
//! Values JSON cannot hold (dates, infinities, NaN) become [`non_json`] objects, which
//! fail every check a string, number or boolean would fail, as the Python values do.
//! Mapping keys must be strings. Aliases are expanded, within a node budget.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};
use serde_json::{Map, Number, Value};

/// The key of the object that stands for a value JSON cannot hold.
pub(crate) const NON_JSON_KEY: &str = "!yaml";

/// Deepest nesting read (Python's own recursion limit stops deeper documents).
const MAX_DEPTH: usize = 500;

/// A document that is not YAML as `safe_load` reads it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct YamlError(pub(crate) String);

fn error(message: impl Into<String>) -> YamlError {
    YamlError(message.into())
}

/// The object standing for a YAML value JSON cannot hold: `{"!yaml": "<kind> <text>"}`.
pub(crate) fn non_json(kind: &str, text: &str) -> Value {
    let mut map = Map::new();
    map.insert(
        NON_JSON_KEY.to_owned(),
        Value::String(format!("{kind} {text}")),
    );
    Value::Object(map)
}

/// Reads the one document of `text` into JSON (an empty stream is `null`), making at
/// most `max_nodes` values (aliases count once per use).
pub(crate) fn safe_load(text: &str, max_nodes: usize) -> Result<Value, YamlError> {
    if let Some(c) = text.chars().find(|&c| !printable(c)) {
        return Err(error(format!(
            "the document holds the unacceptable character U+{:04X}",
            u32::from(c)
        )));
    }
    let mut reader = Reader {
        events: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
        max_nodes,
    };
    let mut value = Value::Null;
    let mut documents = 0;
    loop {
        match reader.next()? {
            Event::StreamStart | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(error(
                        "expected a single document in the stream, but found another document",
                    ));
                }
                let first = reader.next()?;
                value = reader.node(first, 0)?;
                match reader.next()? {
                    Event::DocumentEnd => {}
                    other => return Err(error(format!("unexpected {other:?} after the document"))),
                }
                reader.anchors.clear();
            }
            other => return Err(error(format!("unexpected {other:?}"))),
        }
    }
    Ok(value)
}

/// PyYAML's reader refuses these characters anywhere in a document.
fn printable(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r' | '\u{20}'..='\u{7E}' | '\u{85}' | '\u{A0}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

struct Reader<'a> {
    events: Parser<'a, saphyr_parser::StrInput<'a>>,
    /// Anchor id → its value and how many nodes it holds.
    anchors: HashMap<usize, (Value, usize)>,
    nodes: usize,
    max_nodes: usize,
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Result<Event<'a>, YamlError> {
        match self.events.next() {
            Some(Ok((event, _))) => Ok(event),
            Some(Err(e)) => Err(error(e.to_string())),
            None => Ok(Event::StreamEnd),
        }
    }

    fn count(&mut self, nodes: usize) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(nodes);
        if self.nodes > self.max_nodes {
            return Err(error(format!(
                "the document expands to more than {} values",
                self.max_nodes
            )));
        }
        Ok(())
    }

    fn remember(&mut self, anchor: usize, value: &Value, start: usize) {
        if anchor != 0 {
            self.anchors
                .insert(anchor, (value.clone(), self.nodes.saturating_sub(start)));
        }
    }

    /// The node that `first` starts.
    fn node(&mut self, first: Event<'a>, depth: usize) -> Result<Value, YamlError> {
        if depth > MAX_DEPTH {
            return Err(error(format!(
                "the document nests deeper than {MAX_DEPTH} levels"
            )));
        }
        let start = self.nodes;
        match first {
            Event::Alias(id) => {
                let (value, nodes) = self.anchors.get(&id).cloned().ok_or_else(|| {
                    error("an alias names an anchor that is not defined before it (or contains it)")
                })?;
                self.count(nodes.max(1))?;
                Ok(value)
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1)?;
                let value = scalar(&text, style, tag.as_deref())?;
                self.remember(anchor, &value, start);
                Ok(value)
            }
            Event::SequenceStart(anchor, tag) => {
                check_collection_tag(tag.as_deref(), "seq")?;
                self.count(1)?;
                let mut items = Vec::new();
                loop {
                    match self.next()? {
                        Event::SequenceEnd => break,
                        event => items.push(self.node(event, depth + 1)?),
                    }
                }
                let value = Value::Array(items);
                self.remember(anchor, &value, start);
                Ok(value)
            }
            Event::MappingStart(anchor, tag) => {
                check_collection_tag(tag.as_deref(), "map")?;
                self.count(1)?;
                let value = self.mapping(depth)?;
                self.remember(anchor, &value, start);
                Ok(value)
            }
            other => Err(error(format!("unexpected {other:?}"))),
        }
    }

    /// The rest of a mapping, its merge keys applied as PyYAML applies them: merged
    /// pairs come first (of a list of mappings, the first wins), the mapping's own
    /// pairs after them, and a later pair replaces an earlier one of the same key.
    fn mapping(&mut self, depth: usize) -> Result<Value, YamlError> {
        let mut merged: Vec<(String, Value)> = Vec::new();
        let mut own: Vec<(String, Value)> = Vec::new();
        loop {
            let key_event = match self.next()? {
                Event::MappingEnd => break,
                event => event,
            };
            let is_merge = matches!(
                &key_event,
                Event::Scalar(text, ScalarStyle::Plain, _, None) if text == "<<"
            );
            let key = match &key_event {
                // `=` as a key is the string "=".
                Event::Scalar(text, ScalarStyle::Plain, _, None) if text == "=" => {
                    self.count(1)?;
                    Value::String("=".to_owned())
                }
                _ if is_merge => {
                    self.count(1)?;
                    Value::Null
                }
                _ => self.node(key_event, depth + 1)?,
            };
            let value_event = self.next()?;
            let value = self.node(value_event, depth + 1)?;
            if is_merge {
                match value {
                    Value::Object(map) => merged.extend(map),
                    Value::Array(items) => {
                        let mut maps = Vec::new();
                        for item in items {
                            match item {
                                Value::Object(map) => maps.push(map),
                                _ => {
                                    return Err(error(
                                        "a merge key (<<) takes a mapping or a list of mappings",
                                    ));
                                }
                            }
                        }
                        for map in maps.into_iter().rev() {
                            merged.extend(map);
                        }
                    }
                    _ => {
                        return Err(error(
                            "a merge key (<<) takes a mapping or a list of mappings",
                        ));
                    }
                }
                continue;
            }
            let Value::String(key) = key else {
                return Err(error(format!(
                    "the mapping key {key} is not a string; quote it"
                )));
            };
            own.push((key, value));
        }
        let mut map = Map::new();
        for (key, value) in merged.into_iter().chain(own) {
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

const YAML_TAG: &str = "tag:yaml.org,2002:";

fn tag_text(tag: &Tag) -> String {
    format!("{}{}", tag.handle, tag.suffix)
}

fn check_collection_tag(tag: Option<&Tag>, kind: &str) -> Result<(), YamlError> {
    let Some(tag) = tag else { return Ok(()) };
    let text = tag_text(tag);
    if text == "!" || text.strip_prefix(YAML_TAG) == Some(kind) {
        return Ok(());
    }
    Err(unknown_tag(&text))
}

fn unknown_tag(text: &str) -> YamlError {
    error(format!(
        "the tag {text:?} is not one that yaml.safe_load constructs"
    ))
}

/// A scalar's value: plain scalars are resolved as YAML 1.1 (PyYAML's resolver),
/// quoted and block ones are strings, tagged ones are what their tag says.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, YamlError> {
    // The non-specific tag `!` leaves a plain scalar to the resolver.
    let tag = tag.filter(|t| tag_text(t) != "!" || style != ScalarStyle::Plain);
    if let Some(tag) = tag {
        let full = tag_text(tag);
        if full == "!" {
            return Ok(Value::String(text.to_owned()));
        }
        return match full.strip_prefix(YAML_TAG) {
            Some("str") => Ok(Value::String(text.to_owned())),
            Some("null") => Ok(Value::Null),
            Some("bool") => match text.to_ascii_lowercase().as_str() {
                "yes" | "true" | "on" => Ok(Value::Bool(true)),
                "no" | "false" | "off" => Ok(Value::Bool(false)),
                _ => Err(error(format!("{text:?} is not a !!bool"))),
            },
            Some("int") => int(text).ok_or_else(|| error(format!("{text:?} is not an !!int"))),
            Some("float") => float(text).ok_or_else(|| error(format!("{text:?} is not a !!float"))),
            Some("timestamp") if is_timestamp(text) => Ok(non_json("timestamp", text)),
            _ => Err(unknown_tag(&full)),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_owned()));
    }
    Ok(match resolve(text) {
        Plain::Null => Value::Null,
        Plain::Bool(b) => Value::Bool(b),
        Plain::Int => int(text).ok_or_else(|| error(format!("{text:?} is not an integer")))?,
        Plain::Float => float(text).ok_or_else(|| error(format!("{text:?} is not a float")))?,
        Plain::Timestamp => non_json("timestamp", text),
        Plain::Merge => return Err(error("a merge key (<<) stands where a value belongs")),
        Plain::Value => {
            return Err(error(
                "the plain scalar = is a !!value, which yaml.safe_load does not construct",
            ));
        }
        Plain::Str => Value::String(text.to_owned()),
    })
}

/// What PyYAML's implicit resolver makes of a plain scalar (tried in its order:
/// bool, float, int, merge, null, timestamp, value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plain {
    Null,
    Bool(bool),
    Int,
    Float,
    Merge,
    Timestamp,
    Value,
    Str,
}

fn resolve(text: &str) -> Plain {
    match text {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Plain::Bool(true);
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Plain::Bool(false);
        }
        _ => {}
    }
    if is_float(text) {
        Plain::Float
    } else if is_int(text) {
        Plain::Int
    } else if text == "<<" {
        Plain::Merge
    } else if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        Plain::Null
    } else if is_timestamp(text) {
        Plain::Timestamp
    } else if text == "=" {
        Plain::Value
    } else {
        Plain::Str
    }
}

/// A small cursor over ASCII text for the resolver's patterns.
struct Scan<'t> {
    s: &'t [u8],
    i: usize,
}

impl Scan<'_> {
    fn new(s: &str) -> Scan<'_> {
        Scan {
            s: s.as_bytes(),
            i: 0,
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, f: impl Fn(u8) -> bool) -> bool {
        match self.peek() {
            Some(b) if f(b) => {
                self.i += 1;
                true
            }
            _ => false,
        }
    }
    fn eat_str(&mut self, text: &str) -> bool {
        if self.s[self.i..].starts_with(text.as_bytes()) {
            self.i += text.len();
            true
        } else {
            false
        }
    }
    /// Eats `f`-bytes; how many.
    fn many(&mut self, f: impl Fn(u8) -> bool + Copy) -> usize {
        let start = self.i;
        while self.eat(f) {}
        self.i - start
    }
    /// Eats `f`-bytes, any number: always true (for `x*` in a chain of `&&`).
    fn skip(&mut self, f: impl Fn(u8) -> bool + Copy) -> bool {
        self.many(f);
        true
    }
    fn done(&self) -> bool {
        self.i == self.s.len()
    }
    fn sign(&mut self) {
        self.eat(|b| b == b'+' || b == b'-');
    }
}

fn digit(b: u8) -> bool {
    b.is_ascii_digit()
}
fn digit_(b: u8) -> bool {
    b.is_ascii_digit() || b == b'_'
}

/// `(:[0-5]?[0-9])+`
fn sexagesimal_tail(s: &mut Scan<'_>) -> bool {
    let mut parts = 0;
    while s.eat(|b| b == b':') {
        let first = s.eat(digit);
        if !first {
            return false;
        }
        // `[0-5]?[0-9]`: one or two digits, the first of two at most 5.
        let before = s.i;
        if s.eat(digit) && s.s[before - 1] > b'5' {
            return false;
        }
        parts += 1;
    }
    parts > 0
}

/// `[-+]?0b[0-1_]+ | [-+]?0[0-7_]+ | [-+]?(0|[1-9][0-9_]*) | [-+]?0x[0-9a-fA-F_]+
/// | [-+]?[1-9][0-9_]*(:[0-5]?[0-9])+`
fn is_int(text: &str) -> bool {
    let alternatives: [&dyn Fn(&mut Scan<'_>) -> bool; 5] = [
        &|s| s.eat_str("0b") && s.many(|b| b == b'0' || b == b'1' || b == b'_') > 0,
        &|s| s.eat(|b| b == b'0') && s.many(|b| (b'0'..=b'7').contains(&b) || b == b'_') > 0,
        &|s| s.eat(|b| b == b'0') || (s.eat(|b| (b'1'..=b'9').contains(&b)) && s.skip(digit_)),
        &|s| s.eat_str("0x") && s.many(|b| b.is_ascii_hexdigit() || b == b'_') > 0,
        &|s| s.eat(|b| (b'1'..=b'9').contains(&b)) && s.skip(digit_) && sexagesimal_tail(s),
    ];
    alternatives.iter().any(|alt| {
        let mut s = Scan::new(text);
        s.sign();
        alt(&mut s) && s.done()
    })
}

/// `[eE][-+][0-9]+`, optional.
fn exponent(s: &mut Scan<'_>) -> bool {
    if !s.eat(|b| b == b'e' || b == b'E') {
        return true;
    }
    s.eat(|b| b == b'+' || b == b'-') && s.many(digit) > 0
}

/// `[-+]?[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)? | \.[0-9][0-9_]*([eE][-+][0-9]+)?
/// | [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]* | [-+]?\.(inf|Inf|INF) | \.(nan|NaN|NAN)`
fn is_float(text: &str) -> bool {
    let signed: [&dyn Fn(&mut Scan<'_>) -> bool; 3] = [
        &|s| {
            s.eat(digit) && s.skip(digit_) && s.eat(|b| b == b'.') && s.skip(digit_) && exponent(s)
        },
        &|s| {
            s.eat(digit)
                && s.skip(digit_)
                && sexagesimal_tail(s)
                && s.eat(|b| b == b'.')
                && s.skip(digit_)
        },
        &|s| s.eat_str(".inf") || s.eat_str(".Inf") || s.eat_str(".INF"),
    ];
    let unsigned: [&dyn Fn(&mut Scan<'_>) -> bool; 2] = [
        &|s| s.eat(|b| b == b'.') && s.eat(digit) && s.skip(digit_) && exponent(s),
        &|s| s.eat_str(".nan") || s.eat_str(".NaN") || s.eat_str(".NAN"),
    ];
    signed.iter().any(|alt| {
        let mut s = Scan::new(text);
        s.sign();
        alt(&mut s) && s.done()
    }) || unsigned.iter().any(|alt| {
        let mut s = Scan::new(text);
        alt(&mut s) && s.done()
    })
}

/// `YYYY-MM-DD`, or a date and time as PyYAML's timestamp pattern has it.
fn is_timestamp(text: &str) -> bool {
    let mut s = Scan::new(text);
    let n = |s: &mut Scan<'_>, min: usize, max: usize| {
        let got = s.many(digit);
        (min..=max).contains(&got)
    };
    if !(n(&mut s, 4, 4) && s.eat(|b| b == b'-')) {
        return false;
    }
    let date_only = {
        let mut d = Scan { s: s.s, i: s.i };
        n(&mut d, 2, 2) && d.eat(|b| b == b'-') && n(&mut d, 2, 2) && d.done()
    };
    if date_only {
        return true;
    }
    if !(n(&mut s, 1, 2) && s.eat(|b| b == b'-') && n(&mut s, 1, 2)) {
        return false;
    }
    if !(s.eat(|b| b == b'T' || b == b't') || s.many(|b| b == b' ' || b == b'\t') > 0) {
        return false;
    }
    if !(n(&mut s, 1, 2)
        && s.eat(|b| b == b':')
        && n(&mut s, 2, 2)
        && s.eat(|b| b == b':')
        && n(&mut s, 2, 2))
    {
        return false;
    }
    if s.eat(|b| b == b'.') {
        s.many(digit);
    }
    s.many(|b| b == b' ' || b == b'\t');
    if s.eat(|b| b == b'Z') {
        return s.done();
    }
    if s.eat(|b| b == b'+' || b == b'-') {
        if !n(&mut s, 1, 2) {
            return false;
        }
        if s.eat(|b| b == b':') && !n(&mut s, 2, 2) {
            return false;
        }
        return s.done();
    }
    // Trailing blanks without a zone are not part of the pattern.
    s.done() && !text.ends_with([' ', '\t'])
}

fn number_of(value: i128) -> Value {
    if let Ok(v) = i64::try_from(value) {
        Value::Number(v.into())
    } else if let Ok(v) = u64::try_from(value) {
        Value::Number(v.into())
    } else {
        #[allow(clippy::cast_precision_loss)]
        float_value(value as f64, "int")
    }
}

fn float_value(value: f64, text: &str) -> Value {
    Number::from_f64(value).map_or_else(|| non_json("float", text), Value::Number)
}

/// An integer as PyYAML constructs one (`_` ignored; `0b`, `0x`, leading-zero octal,
/// base 60 with `:`).
fn int(text: &str) -> Option<Value> {
    let cleaned: String = text.chars().filter(|&c| c != '_').collect();
    let (sign, body) = match cleaned.as_bytes().first()? {
        b'-' => (-1i128, &cleaned[1..]),
        b'+' => (1, &cleaned[1..]),
        _ => (1, cleaned.as_str()),
    };
    let magnitude = if body == "0" {
        0
    } else if let Some(bits) = body.strip_prefix("0b") {
        i128::from_str_radix(bits, 2).ok()?
    } else if let Some(hex) = body.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if body.starts_with('0') {
        i128::from_str_radix(body, 8).ok()?
    } else if body.contains(':') {
        let mut total: i128 = 0;
        for part in body.split(':') {
            total = total
                .checked_mul(60)?
                .checked_add(part.parse::<i128>().ok()?)?;
        }
        total
    } else {
        body.parse::<i128>().ok()?
    };
    Some(number_of(sign * magnitude))
}

/// A float as PyYAML constructs one.
fn float(text: &str) -> Option<Value> {
    let cleaned: String = text
        .chars()
        .filter(|&c| c != '_')
        .collect::<String>()
        .to_lowercase();
    let (sign, body) = match cleaned.as_bytes().first()? {
        b'-' => (-1.0f64, &cleaned[1..]),
        b'+' => (1.0, &cleaned[1..]),
        _ => (1.0, cleaned.as_str()),
    };
    let value = if body == ".inf" || body == ".nan" {
        return Some(non_json("float", text));
    } else if body.contains(':') {
        let mut total = 0.0f64;
        for part in body.split(':') {
            total = total * 60.0 + part.trim().parse::<f64>().ok()?;
        }
        total
    } else {
        body.trim().parse::<f64>().ok()?
    };
    Some(float_value(sign * value, text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(text: &str) -> Result<Value, YamlError> {
        safe_load(text, 10_000)
    }

    /// Each document with what `yaml.safe_load` (PyYAML 6.0.4) makes of it, as JSON
    /// (`"!yaml"` objects where Python holds a date, an infinity or NaN).
    #[test]
    fn scalars_resolve_as_pyyaml_does() {
        let cases = [
            ("a: yes", json!({"a": true})),
            ("a: No", json!({"a": false})),
            ("a: on", json!({"a": true})),
            ("a: OFF", json!({"a": false})),
            ("a: y", json!({"a": "y"})),
            ("a: tRUE", json!({"a": "tRUE"})),
            ("a: 1", json!({"a": 1})),
            ("a: -12", json!({"a": -12})),
            ("a: 1_000", json!({"a": 1000})),
            ("a: 0755", json!({"a": 493})),
            ("a: 0b101", json!({"a": 5})),
            ("a: 0x1F", json!({"a": 31})),
            ("a: 1:30", json!({"a": 90})),
            ("a: 08", json!({"a": "08"})),
            ("a: 1.0", json!({"a": 1.0})),
            ("a: 1.", json!({"a": 1.0})),
            ("a: .5", json!({"a": 0.5})),
            ("a: 1e3", json!({"a": "1e3"})),
            ("a: 1.0e+3", json!({"a": 1000.0})),
            ("a: 1:30.5", json!({"a": 90.5})),
            ("a: .inf", json!({"a": {"!yaml": "float .inf"}})),
            ("a: -.Inf", json!({"a": {"!yaml": "float -.Inf"}})),
            ("a: .NaN", json!({"a": {"!yaml": "float .NaN"}})),
            ("a: ~", json!({"a": null})),
            ("a:", json!({"a": null})),
            ("a: Null", json!({"a": null})),
            ("a: nULL", json!({"a": "nULL"})),
            (
                "a: 2024-01-31",
                json!({"a": {"!yaml": "timestamp 2024-01-31"}}),
            ),
            (
                "a: 2001-12-14t21:59:43.10-05:00",
                json!({"a": {"!yaml": "timestamp 2001-12-14t21:59:43.10-05:00"}}),
            ),
            ("a: 2024-1-31", json!({"a": "2024-1-31"})),
            ("a: '1'", json!({"a": "1"})),
            ("a: \"yes\"", json!({"a": "yes"})),
            ("a: !!str 1", json!({"a": "1"})),
            ("a: !!int '7'", json!({"a": 7})),
            ("a: !!bool 'ON'", json!({"a": true})),
            ("a: !!float '1'", json!({"a": 1.0})),
            ("a: ! 12", json!({"a": 12})),
            ("a: ! '12'", json!({"a": "12"})),
            ("a: 1__.e-3", json!({"a": 0.001})),
            ("a: 1:60", json!({"a": "1:60"})),
            ("a: 190:20:30", json!({"a": 685_230})),
            ("a: 00", json!({"a": 0})),
            ("a: 0o7", json!({"a": "0o7"})),
            ("a: 0b", json!({"a": "0b"})),
            (
                "a: 2024-1-31 1:02:03",
                json!({"a": {"!yaml": "timestamp 2024-1-31 1:02:03"}}),
            ),
            ("a: 1.2.3", json!({"a": "1.2.3"})),
            ("a: +1", json!({"a": 1})),
            ("a: '1.1'", json!({"a": "1.1"})),
            ("a: 1.1", json!({"a": 1.1})),
            ("", Value::Null),
            ("# only a comment\n", Value::Null),
            ("--- 5\n...\n", json!(5)),
        ];
        for (text, expected) in cases {
            assert_eq!(load(text).unwrap(), expected, "{text:?}");
        }
    }

    #[test]
    fn structure_as_pyyaml_builds_it() {
        let merged = "base: &b {x: 1, y: 2}\nother: &o {y: 3, z: 4}\nm:\n  <<: [*b, *o]\n  x: 9\n";
        assert_eq!(load(merged).unwrap()["m"], json!({"x": 9, "y": 2, "z": 4}),);
        assert_eq!(
            load("a: 1\na: 2\nb: [1, {c: d}]\n").unwrap(),
            json!({"a": 2, "b": [1, {"c": "d"}]})
        );
        assert_eq!(load("a: &x [1, 2]\nb: *x\n").unwrap()["b"], json!([1, 2]));
        assert_eq!(load("=: 1").unwrap(), json!({"=": 1}));
    }

    #[test]
    fn what_safe_load_refuses_is_refused() {
        for text in [
            "a: 1\n---\nb: 2\n",
            "a: !!python/object:os.system x",
            "a: !custom x",
            "a: =",
            "? [a]\n: b",
            "<<: 5",
            "a: *nowhere",
            "a: \u{1}",
            "a: [1, 2",
            "a: !!int x",
            "a: 0x_",
        ] {
            assert!(load(text).is_err(), "{text:?} was read");
        }
    }

    /// PyYAML keeps `1` and `true` as keys; JSON cannot, so they are refused here.
    #[test]
    fn keys_that_are_not_strings_are_refused() {
        for text in ["1: a", "yes: a", "~: a"] {
            let error = load(text).unwrap_err();
            assert!(error.0.contains("quote it"), "{text:?}: {error}");
        }
    }

    #[test]
    fn aliases_are_expanded_within_the_budget() {
        let mut laughs = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = format!("*a{}", i - 1);
            laughs.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        let error = safe_load(&laughs, 100_000).unwrap_err();
        assert!(error.0.contains("more than 100000"), "{error}");
    }
}
