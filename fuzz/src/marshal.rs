//! The marshal form across the guest boundary: the result reader and the HTTP exchange
//! reader take the guest's bytes, and the request writer takes the records the service was
//! sent.

use serde_json::Value;

use vivarium_marshal::{MARSHAL_TAG, MAX_NESTING, ReplyForm, RequestFlags};

/// A result budget large enough that the reader's JSON count never refuses a fuzzed input on
/// size alone (inputs are far smaller), so every other refusal is exercised.
const FUZZ_BUDGET: usize = 1 << 20;

const FLAGS: RequestFlags = RequestFlags {
    layer: false,
    reply: ReplyForm::Marshal,
};

/// The guest's result, as hostile bytes: the reader refuses or returns a value whose compact
/// JSON fits the budget it was given, and which the request writer carries back unchanged
/// (when the request's own level leaves room for its nesting).
pub fn reply(bytes: &[u8]) {
    let budget = bytes.len().min(FUZZ_BUDGET);
    let Some(value) = vivarium_marshal::decode_result(bytes, budget) else {
        return;
    };
    let json = value.to_string();
    assert!(
        json.len() <= budget,
        "a {} byte JSON result passed a budget of {budget}",
        json.len()
    );
    // Carried as a request, the value sits one level deeper (in the request's dict): one
    // at the reader's deepest nesting is left to JSON then, as is one with an integer past
    // i64 (the reader takes up to u64, the writer only what fits i64).
    if depth(&value) < MAX_NESTING && !has_wide_integer(&value) {
        assert_eq!(carried(&value).as_ref(), Some(&value), "{json}");
    }
}

/// A JSON document, as the service receives records: the request writer's marshal form,
/// read back, gives what the JSON path gives (`json.loads` of the same text), or the writer
/// leaves it to the JSON path for a reason it documents.
pub fn round_trip(bytes: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    let Some(encoded) = vivarium_marshal::encode_request(Some(&value), FLAGS) else {
        assert!(
            has_wide_integer(&value),
            "the writer refused a document it should carry: {value}"
        );
        return;
    };
    assert_eq!(encoded.first(), Some(&MARSHAL_TAG));
    match carried(&value) {
        Some(read) => assert!(same_as_python(&read, &value), "{value} came back as {read}"),
        None => assert!(
            has_infinite_float(&value) || depth(&value) >= MAX_NESTING,
            "the reader refused the writer's form of {value}"
        ),
    }
}

/// The guest's HTTP request through the host call, as hostile bytes: refused with a reason
/// or read, never a panic.
pub fn exchange_request(bytes: &[u8]) {
    if let Ok(request) = vivarium_marshal::decode_exchange_request(bytes) {
        assert!(request.body.len() <= bytes.len());
    }
}

/// `value` written as a request and read back, as the guest would have it.
fn carried(value: &Value) -> Option<Value> {
    let encoded = vivarium_marshal::encode_request(Some(value), FLAGS)?;
    let mut read = vivarium_marshal::decode_result(encoded.get(1..)?, usize::MAX)?;
    read.get_mut("data").map(Value::take)
}

/// Whether `read` is what Python makes of `json`: the same structure, integers equal, and
/// floats (a number with a fraction or an exponent) equal as `float`s.
fn same_as_python(read: &Value, json: &Value) -> bool {
    match (read, json) {
        (Value::Number(read), Value::Number(json)) => {
            let is_float = |text: &str| text.contains(['.', 'e', 'E']);
            let (read, json) = (read.as_str(), json.as_str());
            if is_float(json) {
                is_float(read) && read.parse::<f64>().ok() == json.parse::<f64>().ok()
            } else {
                read.parse::<i128>().ok() == json.parse::<i128>().ok()
            }
        }
        (Value::Array(read), Value::Array(json)) => {
            read.len() == json.len() && read.iter().zip(json).all(|(r, j)| same_as_python(r, j))
        }
        (Value::Object(read), Value::Object(json)) => {
            read.len() == json.len()
                && json
                    .iter()
                    .all(|(key, j)| read.get(key).is_some_and(|r| same_as_python(r, j)))
        }
        _ => read == json,
    }
}

/// Whether `value` holds an integer outside 64 bits, which the writer leaves to JSON.
fn has_wide_integer(value: &Value) -> bool {
    any_number(value, &|text| {
        !text.contains(['.', 'e', 'E']) && text.parse::<i64>().is_err()
    })
}

/// Whether `value` holds a float out of range, which Python reads as infinity and the
/// reader leaves to `json.dumps`.
fn has_infinite_float(value: &Value) -> bool {
    any_number(value, &|text| {
        text.contains(['.', 'e', 'E']) && text.parse::<f64>().is_ok_and(f64::is_infinite)
    })
}

fn any_number(value: &Value, test: &dyn Fn(&str) -> bool) -> bool {
    match value {
        Value::Number(number) => test(number.as_str()),
        Value::Array(items) => items.iter().any(|item| any_number(item, test)),
        Value::Object(map) => map.values().any(|item| any_number(item, test)),
        _ => false,
    }
}

/// Nesting of arrays and objects: a scalar is 0.
fn depth(value: &Value) -> usize {
    let deepest = |items: &mut dyn Iterator<Item = &Value>| items.map(depth).max().unwrap_or(0);
    match value {
        Value::Array(items) => 1 + deepest(&mut items.iter()),
        Value::Object(map) => 1 + deepest(&mut map.values()),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_edge_numbers_survive_the_round_trip() {
        round_trip(br#"[{"a": 1, "b": 1.5, "c": "x\u00e9", "d": [null, true, 1E+5]}]"#);
        round_trip(b"[123456789012345678901234567890]");
        round_trip(b"[1e400, -0.0, 9007199254740993]");
    }

    #[test]
    fn a_deep_document_is_left_to_the_json_path_or_carried() {
        let deep = format!("{}{}", "[".repeat(127), "]".repeat(127));
        round_trip(deep.as_bytes());
    }

    #[test]
    fn hostile_replies_are_refused_without_panicking() {
        for bytes in [
            &b"["[..],
            b"[\xff\xff\xff\xff",
            b"r\0\0\0\0",
            b"{z\x01a",
            b"l\x09\0\0\0",
        ] {
            reply(bytes);
            exchange_request(bytes);
        }
    }
}
