//! The pickle writer: a JSON value as a protocol 2 (or 3) pickle of dicts, lists, str,
//! int, float, bool and None, the opcodes Python's own pickler uses for them (without
//! memo entries, which only matter for shared objects and JSON has none).

use serde_json::Value;

use super::op;

/// Parses JSON text and writes it as a pickle of the given protocol (2 or 3; the
/// opcodes are the same, only the PROTO header differs).
pub(super) fn json_to_pickle(json: &[u8], protocol: u8) -> Result<Vec<u8>, String> {
    if !(2..=3).contains(&protocol) {
        return Err(format!(
            "pickle protocol {protocol} cannot be written (2 or 3)"
        ));
    }
    let value: Value =
        serde_json::from_slice(json).map_err(|e| format!("invalid JSON text: {e}"))?;
    let mut out = Vec::with_capacity(json.len() + json.len() / 2 + 8);
    out.extend_from_slice(&[op::PROTO, protocol]);
    // serde_json's parser refuses nesting beyond 128 levels, which bounds this
    // recursion.
    write_value(&value, &mut out)?;
    out.push(op::STOP);
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    match value {
        Value::Null => out.push(op::NONE),
        Value::Bool(true) => out.push(op::NEWTRUE),
        Value::Bool(false) => out.push(op::NEWFALSE),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                write_int(i.into(), out);
            } else if let Some(u) = n.as_u64() {
                write_int(u.into(), out);
            } else {
                let f = n
                    .as_f64()
                    .ok_or_else(|| format!("number {n} has no pickle form"))?;
                out.push(op::BINFLOAT);
                out.extend_from_slice(&f.to_be_bytes());
            }
        }
        Value::String(s) => write_str(s, out)?,
        Value::Array(items) => {
            out.push(op::EMPTY_LIST);
            if !items.is_empty() {
                out.push(op::MARK);
                for item in items {
                    write_value(item, out)?;
                }
                out.push(op::APPENDS);
            }
        }
        Value::Object(map) => {
            out.push(op::EMPTY_DICT);
            if !map.is_empty() {
                out.push(op::MARK);
                for (key, item) in map {
                    write_str(key, out)?;
                    write_value(item, out)?;
                }
                out.push(op::SETITEMS);
            }
        }
    }
    Ok(())
}

fn write_str(s: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let len = u32::try_from(s.len())
        .map_err(|_| "a string of 4 GiB or more has no protocol 2 pickle form")?;
    out.push(op::BINUNICODE);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// The shortest integer opcode, as Python's pickler picks it: BININT1, BININT2,
/// BININT, else LONG1 with the fewest two's complement bytes.
fn write_int(i: i128, out: &mut Vec<u8>) {
    if let Ok(small) = u8::try_from(i) {
        out.extend_from_slice(&[op::BININT1, small]);
    } else if let Ok(small) = u16::try_from(i) {
        out.push(op::BININT2);
        out.extend_from_slice(&small.to_le_bytes());
    } else if let Ok(small) = i32::try_from(i) {
        out.push(op::BININT);
        out.extend_from_slice(&small.to_le_bytes());
    } else {
        let bytes = i.to_le_bytes();
        let mut len = bytes.len();
        // Drop high bytes that only repeat the sign.
        while len > 1 {
            let (last, sign_below) = (bytes[len - 1], bytes[len - 2] & 0x80);
            if (last == 0 && sign_below == 0) || (last == 0xff && sign_below != 0) {
                len -= 1;
            } else {
                break;
            }
        }
        out.extend_from_slice(&[op::LONG1, len as u8]);
        out.extend_from_slice(&bytes[..len]);
    }
}
