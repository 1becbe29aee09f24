//! `serde_json::Value` <-> `google.protobuf.Struct`, the wire form of an
//! approval's context.
//!
//! Protobuf numbers are doubles: an integer comes back as an integer when the
//! double holds it exactly, so `{"replicas": 3}` round-trips as written.

use prost_types::value::Kind;
use serde_json::{Map, Number, Value};

/// A JSON object as a protobuf `Struct`; `None` when `value` is not an object.
pub(crate) fn to_struct(value: &Value) -> Option<prost_types::Struct> {
    let Value::Object(map) = value else {
        return None;
    };
    Some(object_to_struct(map))
}

fn object_to_struct(map: &Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect(),
    }
}

fn to_value(value: &Value) -> prost_types::Value {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(to_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(object_to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A protobuf `Struct` as a JSON object (an empty one when absent).
pub(crate) fn from_struct(s: Option<prost_types::Struct>) -> Value {
    Value::Object(
        s.map(|s| {
            s.fields
                .into_iter()
                .map(|(k, v)| (k, from_value(v)))
                .collect()
        })
        .unwrap_or_default(),
    )
}

fn from_value(value: prost_types::Value) -> Value {
    match value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::NumberValue(n)) => number(n),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::ListValue(list)) => {
            Value::Array(list.values.into_iter().map(from_value).collect())
        }
        Some(Kind::StructValue(s)) => from_struct(Some(s)),
    }
}

/// Largest magnitude below which every integer is exact in an f64.
const EXACT_INTEGER: f64 = 9_007_199_254_740_992.0; // 2^53

fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() <= EXACT_INTEGER {
        return Value::Number(Number::from(n as i64));
    }
    Number::from_f64(n).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_json_object_round_trips_through_a_struct() {
        let value = json!({
            "service": "billing",
            "replicas": 3,
            "ratio": 0.25,
            "canary": true,
            "owner": null,
            "regions": ["eu", "us"],
            "limits": {"cpu": "2", "memory_gib": 4}
        });
        let s = to_struct(&value).expect("an object");
        assert_eq!(from_struct(Some(s)), value);
    }

    #[test]
    fn only_objects_are_contexts() {
        assert!(to_struct(&json!([1, 2])).is_none());
        assert!(to_struct(&json!("text")).is_none());
    }

    #[test]
    fn a_missing_context_reads_as_an_empty_object() {
        assert_eq!(from_struct(None), json!({}));
    }
}
