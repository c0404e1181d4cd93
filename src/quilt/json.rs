//! JSON written the way Python's `json.dumps` writes it, byte for byte.
//!
//! Two styles matter for Quilt: the canonical form hashed into a package's top hash,
//! `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`, and the
//! form quilt3 writes manifest lines in, `json.dumps(obj, ensure_ascii=False)` (keys in
//! their order, `", "` and `": "`). serde_json alone produces neither: it writes floats
//! differently (`1e16` as `1e16`, Python `1e+16`; `1e-5` vs `1e-05`) and never escapes
//! non-ASCII.

use serde_json::{Map, Number, Value};

/// How to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Sort object keys by code point at every depth.
    pub sort_keys: bool,
    /// Escape everything outside printable ASCII as `\uXXXX`.
    pub ensure_ascii: bool,
    /// Between items: `","` or `", "`.
    pub item_separator: &'static str,
    /// Between a key and its value: `":"` or `": "`.
    pub key_separator: &'static str,
}

/// The form hashed into top hashes.
pub const CANONICAL: Style = Style {
    sort_keys: true,
    ensure_ascii: true,
    item_separator: ",",
    key_separator: ":",
};

/// The form quilt3 writes manifest lines in.
pub const QUILT3_LINE: Style = Style {
    sort_keys: false,
    ensure_ascii: false,
    item_separator: ", ",
    key_separator: ": ",
};

/// Serializes `value` in `style`.
pub fn to_string(value: &Value, style: Style) -> String {
    let mut out = String::new();
    write_value(value, style, &mut out);
    out
}

/// Serializes an object in `style` (without wrapping it in a `Value`).
pub fn object_to_string(map: &Map<String, Value>, style: Style) -> String {
    let mut out = String::new();
    write_object(map, style, &mut out);
    out
}

/// Appends `value` in `style` to `out`.
pub fn write_value(value: &Value, style: Style, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, style.ensure_ascii, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(style.item_separator);
                }
                write_value(item, style, out);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(map, style, out),
    }
}

/// Appends the string `s` in `style` to `out`.
pub fn write_str(s: &str, style: Style, out: &mut String) {
    write_string(s, style.ensure_ascii, out);
}

fn write_object(map: &Map<String, Value>, style: Style, out: &mut String) {
    out.push('{');
    let mut pairs: Vec<(&String, &Value)> = map.iter().collect();
    if style.sort_keys {
        // Rust orders `str` by UTF-8 bytes, which is code point order, as Python does.
        pairs.sort_by(|a, b| a.0.cmp(b.0));
    }
    for (i, (key, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push_str(style.item_separator);
        }
        write_string(key, style.ensure_ascii, out);
        out.push_str(style.key_separator);
        write_value(value, style, out);
    }
    out.push('}');
}

fn write_string(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => push_escape(c as u32, out),
            c if ensure_ascii && (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    push_escape(u32::from(*unit), out);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_escape(unit: u32, out: &mut String) {
    out.push_str(&format!("\\u{unit:04x}"));
}

/// Appends the JSON text `raw` in the canonical style ([`CANONICAL`]), as
/// `write_value` would write it parsed, without building a [`Value`]: objects are
/// held as their members' canonical texts while their keys are sorted, so memory
/// stays a small multiple of the text (a `Value` costs tens of times its text).
/// Duplicate keys keep the last value, as Python's `json.loads` does.
pub fn write_canonical_raw(raw: &str, out: &mut String) -> Result<(), serde_json::Error> {
    use serde::de::DeserializeSeed as _;
    let mut de = serde_json::Deserializer::from_str(raw);
    Canonical { out }.deserialize(&mut de)?;
    de.end()
}

/// Writes what it deserializes in the canonical style.
struct Canonical<'o> {
    out: &'o mut String,
}

impl<'de> serde::de::DeserializeSeed<'de> for Canonical<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Canonical<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.out.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        write_number(&Number::from(v), self.out);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        write_number(&Number::from(v), self.out);
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.out.push_str(&python_float_repr(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        write_string(v, true, self.out);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.push_str("null");
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push('[');
        let mut first = true;
        loop {
            let mark = self.out.len();
            if !first {
                self.out.push(',');
            }
            if seq
                .next_element_seed(Canonical {
                    out: &mut *self.out,
                })?
                .is_none()
            {
                self.out.truncate(mark);
                break;
            }
            first = false;
        }
        self.out.push(']');
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut members: Vec<(std::borrow::Cow<'de, str>, String)> = Vec::new();
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            let mut text = String::new();
            map.next_value_seed(Canonical { out: &mut text })?;
            members.push((key.0, text));
        }
        // Stable: of equal keys the last pushed is the last of its run.
        members.sort_by(|a, b| a.0.cmp(&b.0));
        self.out.push('{');
        let mut first = true;
        for (i, (key, text)) in members.iter().enumerate() {
            if members.get(i + 1).is_some_and(|next| next.0 == *key) {
                continue;
            }
            if !first {
                self.out.push(',');
            }
            first = false;
            write_string(key, true, self.out);
            self.out.push(':');
            self.out.push_str(text);
        }
        self.out.push('}');
        Ok(())
    }
}

/// A string borrowed from the input when it holds no escapes.
struct CowStr<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<CowStr<'de>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<CowStr<'de>, E> {
                Ok(CowStr(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

fn write_number(n: &Number, out: &mut String) {
    if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
    } else if let Some(f) = n.as_f64() {
        out.push_str(&python_float_repr(f));
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, in exponent form when
/// the decimal exponent is below -4 or at least 16 (`1e-05`, `1e+16`), else fixed
/// with at least one decimal (`0.0001`, `1.0`).
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".to_owned()
        } else {
            "-Infinity".to_owned()
        };
    }
    // `{:e}` gives the shortest round-trip digits: "1.2345e17", "-2.5e-5", "0e0".
    let sci = format!("{f:e}");
    let (negative, sci) = match sci.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, sci.as_str()),
    };
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // The value is 0.DIGITS × 10^decpt.
    let decpt = exponent + 1;
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if decpt <= -4 || decpt > 16 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", e.abs()));
    } else if decpt <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat(usize::try_from(-decpt).unwrap_or(0)));
        out.push_str(&digits);
    } else {
        let point = usize::try_from(decpt).unwrap_or(0);
        if point >= digits.len() {
            out.push_str(&digits);
            out.push_str(&"0".repeat(point - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_as_python_repr() {
        let cases = [
            (1e-05, "1e-05"),
            (2.5e-05, "2.5e-05"),
            (0.0001, "0.0001"),
            (1.5, "1.5"),
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (-0.5, "-0.5"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (std::f64::consts::PI, "3.141592653589793"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (123456789.123, "123456789.123"),
            (0.1, "0.1"),
            (100.0, "100.0"),
            (1e22, "1e+22"),
            (-1.5e-7, "-1.5e-07"),
        ];
        for (f, expected) in cases {
            assert_eq!(python_float_repr(f), expected, "{f}");
        }
    }

    #[test]
    fn canonical_raw_is_canonical_of_the_value() {
        for raw in [
            r#"{"b": "é😀\u007f\n", "a": [1, 2.0, null, true, -3, 1e16, 1.5e-7], "A": {"z": 1, "y": {}}}"#,
            r#"{"k": 1, "k": {"x": []}, "j": "\u00e9"}"#,
            "[]",
            "[[], {}, [1]]",
            "\"x\"",
            "12345678901234567890123",
            "-0",
        ] {
            let value: Value = serde_json::from_str(raw).unwrap();
            let mut out = String::new();
            write_canonical_raw(raw, &mut out).unwrap();
            assert_eq!(out, to_string(&value, CANONICAL), "{raw}");
        }
        for bad in ["", "{", "[1,]", "{} x", "nope"] {
            assert!(
                write_canonical_raw(bad, &mut String::new()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn strings_and_keys() {
        let value = json!({"b": "é😀\u{7f}\n\t\"\\\u{1}", "a": [1, 2.0, null, true], "A": {"z": 1, "y": 2}});
        assert_eq!(
            to_string(&value, CANONICAL),
            r#"{"A":{"y":2,"z":1},"a":[1,2.0,null,true],"b":"\u00e9\ud83d\ude00\u007f\n\t\"\\\u0001"}"#
        );
        assert_eq!(
            to_string(&value, QUILT3_LINE),
            "{\"b\": \"é😀\u{7f}\\n\\t\\\"\\\\\\u0001\", \"a\": [1, 2.0, null, true], \"A\": {\"z\": 1, \"y\": 2}}"
        );
    }
}
