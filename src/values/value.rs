//! Values as the foreign wire formats carry them: the data a pickle may carry (with nothing
//! that could run code), of which msgpack uses the plain part.

/// One value of a foreign client. The variants only Python has (complex numbers, sets,
/// exceptions, tokens) are never made by a msgpack-only build.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "python"), allow(dead_code))]
pub(crate) enum ForeignValue {
    None,
    Bool(bool),
    Int(i64),
    /// An integer beyond `i64`: little-endian two's complement, as pickle's `LONG1` has it.
    BigInt(Vec<u8>),
    Float(f64),
    Complex(f64, f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<ForeignValue>),
    List(Vec<ForeignValue>),
    Dict(Vec<(ForeignValue, ForeignValue)>),
    Set(Vec<ForeignValue>),
    FrozenSet(Vec<ForeignValue>),
    /// An instance of a builtin exception class, by name (`KeyError`), with its arguments.
    Exception(String, Vec<ForeignValue>),
    /// `multiprocessing.managers.Token(typeid, address, id)`.
    Token {
        typeid: String,
        address: Box<ForeignValue>,
        id: String,
    },
}

impl ForeignValue {
    /// About what the value takes in memory: its texts and bytes, and a word or so per node
    /// (what a proxy of it costs the store's budget).
    #[cfg(feature = "python")]
    pub(crate) fn footprint(&self) -> u64 {
        let node = std::mem::size_of::<ForeignValue>() as u64;
        node + match self {
            ForeignValue::Str(s) => s.len() as u64,
            ForeignValue::Bytes(b) | ForeignValue::BigInt(b) => b.len() as u64,
            ForeignValue::Tuple(items)
            | ForeignValue::List(items)
            | ForeignValue::Set(items)
            | ForeignValue::FrozenSet(items)
            | ForeignValue::Exception(_, items) => items.iter().map(ForeignValue::footprint).sum(),
            ForeignValue::Dict(pairs) => pairs
                .iter()
                .map(|(k, v)| k.footprint() + v.footprint())
                .sum(),
            ForeignValue::Token {
                typeid,
                address,
                id,
            } => (typeid.len() + id.len()) as u64 + address.footprint(),
            _ => 0,
        }
    }

    /// The Python type's name, for error messages a Python user reads.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            ForeignValue::None => "NoneType",
            ForeignValue::Bool(_) => "bool",
            ForeignValue::Int(_) | ForeignValue::BigInt(_) => "int",
            ForeignValue::Float(_) => "float",
            ForeignValue::Complex(..) => "complex",
            ForeignValue::Str(_) => "str",
            ForeignValue::Bytes(_) => "bytes",
            ForeignValue::Tuple(_) => "tuple",
            ForeignValue::List(_) => "list",
            ForeignValue::Dict(_) => "dict",
            ForeignValue::Set(_) => "set",
            ForeignValue::FrozenSet(_) => "frozenset",
            ForeignValue::Exception(..) => "exception",
            ForeignValue::Token { .. } => "Token",
        }
    }

    /// The value as a Python `str()` would show it, roughly (for `__str__` on a proxy).
    pub(crate) fn to_str(&self) -> String {
        match self {
            ForeignValue::Str(s) => s.clone(),
            other => other.repr(),
        }
    }

    /// The value as Python's `repr()` shows it, for the types we hold.
    pub(crate) fn repr(&self) -> String {
        fn seq(items: &[ForeignValue], open: &str, close: &str) -> String {
            let inner: Vec<String> = items.iter().map(ForeignValue::repr).collect();
            format!("{open}{}{close}", inner.join(", "))
        }
        match self {
            ForeignValue::None => "None".into(),
            ForeignValue::Bool(true) => "True".into(),
            ForeignValue::Bool(false) => "False".into(),
            ForeignValue::Int(n) => n.to_string(),
            ForeignValue::BigInt(bytes) => match big_to_i128(bytes) {
                Some(n) => n.to_string(),
                None => "<int>".into(),
            },
            ForeignValue::Float(f) => float_repr(*f),
            ForeignValue::Complex(re, im) => format!("({}{:+}j)", float_repr(*re), im),
            ForeignValue::Str(s) => str_repr(s),
            ForeignValue::Bytes(b) => format!("b{:?}", String::from_utf8_lossy(b)),
            ForeignValue::Tuple(items) if items.len() == 1 => format!("({},)", items[0].repr()),
            ForeignValue::Tuple(items) => seq(items, "(", ")"),
            ForeignValue::List(items) => seq(items, "[", "]"),
            ForeignValue::Set(items) if items.is_empty() => "set()".into(),
            ForeignValue::Set(items) => seq(items, "{", "}"),
            ForeignValue::FrozenSet(items) => format!("frozenset({})", seq(items, "{", "}")),
            ForeignValue::Dict(pairs) => {
                let inner: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| format!("{}: {}", k.repr(), v.repr()))
                    .collect();
                format!("{{{}}}", inner.join(", "))
            }
            ForeignValue::Exception(name, args) => format!("{name}{}", seq(args, "(", ")")),
            ForeignValue::Token { typeid, id, .. } => {
                format!("Token(typeid={typeid:?}, id={id:?})")
            }
        }
    }
}

/// Python's `repr` of a str: single quotes unless the text has one and no double quote.
fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

fn float_repr(f: f64) -> String {
    if f.is_finite() && f == f.trunc() && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// A little-endian two's complement integer as an `i128`, if it fits.
pub(crate) fn big_to_i128(bytes: &[u8]) -> Option<i128> {
    if bytes.is_empty() {
        return Some(0);
    }
    if bytes.len() > 16 {
        // Only sign-extension bytes may follow the sixteenth.
        let sign = if bytes[15] & 0x80 != 0 { 0xff } else { 0 };
        if bytes[16..].iter().any(|&b| b != sign) {
            return None;
        }
    }
    let negative = bytes[bytes.len().min(16) - 1] & 0x80 != 0;
    let mut buf = [if negative { 0xff } else { 0 }; 16];
    let n = bytes.len().min(16);
    buf[..n].copy_from_slice(&bytes[..n]);
    Some(i128::from_le_bytes(buf))
}

/// The shortest little-endian two's complement bytes of `n` (pickle's `LONG1` payload).
pub(crate) fn i128_to_big(n: i128) -> Vec<u8> {
    let bytes = n.to_le_bytes();
    let mut len = 16;
    while len > 1 {
        let top = bytes[len - 1];
        let next_sign = bytes[len - 2] & 0x80;
        if (top == 0 && next_sign == 0) || (top == 0xff && next_sign != 0) {
            len -= 1;
        } else {
            break;
        }
    }
    bytes[..len].to_vec()
}
