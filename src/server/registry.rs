//! Registered functions: how a plain Rust closure becomes something the manager can call with
//! encoded arguments and whose result it can encode, without macros (like axum handlers).
//!
//! Each function can be called two ways: the native path (bincode bytes in, bytes out, no
//! indirection: the fast one), and through the serde boundary (arguments from any
//! `Deserializer`, the result to any `Serializer`, type-erased with `erased-serde`), so a
//! listener speaking another wire format can call the same functions.

use std::fmt::Display;

use crate::error::{RemoteError, RemoteErrorKind};
use crate::fxhash::FxHashMap;
use crate::wire::borrowed::Argument;
use crate::wire::codec;
use serde::Serialize;

/// How a function's argument errors name it until the connection, which knows its name,
/// replaces this with the name (see `server::connection`).
pub(crate) const FUNCTION: &str = "the function";

/// Argument errors of a function name it (the handler does not know its own name).
#[cold]
pub(crate) fn name_the_function(error: RemoteError, name: &str) -> RemoteError {
    match error.message().strip_prefix(FUNCTION) {
        Some(rest) if error.kind() == RemoteErrorKind::BadArguments => {
            RemoteError::new(error.kind(), format!("`{name}`{rest}"))
        }
        _ => error,
    }
}

/// A function the manager can serve: any `Fn` of 0 to 8 arguments that implement
/// `serde::Deserialize` (owned) or are [`Str`](crate::Str) / [`Bytes`](crate::Bytes)
/// (borrowed from the call's frame), returning a value that implements [`IntoReply`].
///
/// The `Args` parameter is the argument tuple; it only lets one trait cover every arity and
/// is inferred at [`ManagerBuilder::register`](crate::ManagerBuilder::register).
#[diagnostic::on_unimplemented(
    message = "this cannot be registered as a function",
    label = "not a `Fn` of serde arguments returning a reply",
    note = "each argument must be an owned serde type (`String`, `Vec<u8>`, a \
            `#[derive(Deserialize)]` type) or `monogusa::Str` / `monogusa::Bytes` to borrow; the \
            result a std serde type, `Result<T, E: Display>` or `monogusa::Reply(value)`; the \
            function `Send + Sync + 'static`"
)]
pub trait Handler<Args>: Send + Sync + 'static {
    /// Decodes `args`, runs the function and appends the encoded result to `reply`.
    #[doc(hidden)]
    fn call(&self, args: &[u8], reply: &mut Vec<u8>) -> Result<(), RemoteError>;

    /// Takes the argument tuple from any serde format, runs the function and hands the
    /// result to `reply` (which serializes it in that format).
    #[doc(hidden)]
    fn call_erased(
        &self,
        args: &mut dyn erased_serde::Deserializer<'_>,
        reply: ErasedReply<'_>,
    ) -> Result<(), RemoteError>;
}

/// Where a call through the serde boundary puts its result.
pub type ErasedReply<'a> =
    &'a mut dyn FnMut(&dyn erased_serde::Serialize) -> Result<(), RemoteError>;

/// A result a registered function may return.
///
/// Implemented for `Result<T, E>` where `T: Serialize` and `E: Display` (an `Err` reaches the
/// caller as a [`RemoteErrorKind::Handler`] error carrying `E`'s message), for the serde types
/// of the standard library (numbers, `String`, `Vec`, `Option`, maps, sets, tuples, ...), and
/// for [`Reply`], which wraps any other serde type.
///
/// Why not every `Serialize` type? Because `Result<T, E>` is itself `Serialize` when `E` is,
/// and Rust cannot let one blanket implementation treat `Result` specially.
#[diagnostic::on_unimplemented(
    message = "a registered function cannot return `{Self}`",
    label = "`{Self}` does not implement `IntoReply`",
    note = "return a std serde type, `Result<T, E>` with `E: Display`, or wrap your own \
            serde type in `monogusa::Reply(value)`"
)]
pub trait IntoReply {
    /// Appends the encoded result to `out`, or returns the error to send instead.
    #[doc(hidden)]
    fn write_reply(self, out: &mut Vec<u8>) -> Result<(), RemoteError>;

    /// Hands the result to `reply`, or returns the error to send instead.
    #[doc(hidden)]
    fn erased_reply(self, reply: ErasedReply<'_>) -> Result<(), RemoteError>;
}

/// Wraps any serde value so a registered function can return it:
/// `register("stats", || Reply(Stats { .. }))`. The caller receives the bare value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reply<T>(pub T);

impl<T: Serialize> IntoReply for Reply<T> {
    fn write_reply(self, out: &mut Vec<u8>) -> Result<(), RemoteError> {
        codec::encode_result(&self.0, out)
    }

    fn erased_reply(self, reply: ErasedReply<'_>) -> Result<(), RemoteError> {
        reply(&self.0)
    }
}

impl<T: Serialize, E: Display> IntoReply for Result<T, E> {
    fn write_reply(self, out: &mut Vec<u8>) -> Result<(), RemoteError> {
        match self {
            Ok(value) => codec::encode_result(&value, out),
            Err(e) => Err(RemoteError::new(RemoteErrorKind::Handler, e.to_string())),
        }
    }

    fn erased_reply(self, reply: ErasedReply<'_>) -> Result<(), RemoteError> {
        match self {
            Ok(value) => reply(&value),
            Err(e) => Err(RemoteError::new(RemoteErrorKind::Handler, e.to_string())),
        }
    }
}

macro_rules! into_reply_plain {
    ($($ty:ty),* $(,)?) => {$(
        impl IntoReply for $ty {
            fn write_reply(self, out: &mut Vec<u8>) -> Result<(), RemoteError> {
                codec::encode_result(&self, out)
            }

            fn erased_reply(self, reply: ErasedReply<'_>) -> Result<(), RemoteError> {
                reply(&self)
            }
        }
    )*};
}

into_reply_plain!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String,
    &'static str,
    std::path::PathBuf,
    std::time::Duration,
    std::time::SystemTime,
    std::net::IpAddr,
    std::net::SocketAddr,
);

macro_rules! into_reply_generic {
    ($([$($param:ident $(: $bound:path)?),*] $ty:ty;)*) => {$(
        impl<$($param: Serialize $(+ $bound)?),*> IntoReply for $ty {
            fn write_reply(self, out: &mut Vec<u8>) -> Result<(), RemoteError> {
                codec::encode_result(&self, out)
            }

            fn erased_reply(self, reply: ErasedReply<'_>) -> Result<(), RemoteError> {
                reply(&self)
            }
        }
    )*};
}

into_reply_generic!(
    [T] Vec<T>;
    [T] Option<T>;
    [T] Box<T>;
    [T] std::collections::VecDeque<T>;
    [T] std::collections::BTreeSet<T>;
    [T] std::collections::HashSet<T>;
    [K, V] std::collections::BTreeMap<K, V>;
    [K, V] std::collections::HashMap<K, V>;
    [A] (A,);
    [A, B] (A, B);
    [A, B, C] (A, B, C);
    [A, B, C, D] (A, B, C, D);
    [A, B, C, D, E] (A, B, C, D, E);
    [A, B, C, D, E, F] (A, B, C, D, E, F);
    [A, B, C, D, E, F, G] (A, B, C, D, E, F, G);
    [A, B, C, D, E, F, G, H] (A, B, C, D, E, F, G, H);
);

// Arrays encode as tuples (no length), like serde does it: only for the sizes serde covers.
macro_rules! into_reply_arrays {
    ($($n:literal)*) => {$(
        impl<T: Serialize> IntoReply for [T; $n] {
            fn write_reply(self, out: &mut Vec<u8>) -> Result<(), RemoteError> {
                codec::encode_result(&self, out)
            }

            fn erased_reply(self, reply: ErasedReply<'_>) -> Result<(), RemoteError> {
                reply(&self)
            }
        }
    )*};
}

into_reply_arrays!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32
);

macro_rules! handler_for_arity {
    ($($arg:ident),*) => {
        // `Fn($($arg),*)` names the argument types, so rustc can infer them from the
        // function; the higher-ranked bound is what lets `Str` and `Bytes` borrow from each
        // call's frame (for owned types the two bounds are the same).
        impl<F, R, $($arg,)*> Handler<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> R
                + for<'a> Fn($(<$arg as Argument>::At<'a>),*) -> R
                + Send
                + Sync
                + 'static,
            R: IntoReply,
            $($arg: Argument,)*
        {
            #[inline]
            fn call(&self, args: &[u8], reply: &mut Vec<u8>) -> Result<(), RemoteError> {
                #[allow(non_snake_case)]
                let ($($arg,)*): ($(<$arg as Argument>::Wire<'_>,)*) =
                    codec::decode_arguments(args, &FUNCTION)?;
                (self)($(<$arg as Argument>::from_wire($arg)),*).write_reply(reply)
            }

            fn call_erased(
                &self,
                args: &mut dyn erased_serde::Deserializer<'_>,
                reply: ErasedReply<'_>,
            ) -> Result<(), RemoteError> {
                #[allow(non_snake_case)]
                let ($($arg,)*): ($(<$arg as Argument>::Wire<'_>,)*) =
                    erased_serde::deserialize(args).map_err(|e| {
                        RemoteError::new(
                            RemoteErrorKind::BadArguments,
                            format!(
                                "{FUNCTION} expected {}: {e}",
                                std::any::type_name::<($($arg,)*)>()
                            ),
                        )
                    })?;
                (self)($(<$arg as Argument>::from_wire($arg)),*).erased_reply(reply)
            }
        }
    };
}

handler_for_arity!();
handler_for_arity!(A1);
handler_for_arity!(A1, A2);
handler_for_arity!(A1, A2, A3);
handler_for_arity!(A1, A2, A3, A4);
handler_for_arity!(A1, A2, A3, A4, A5);
handler_for_arity!(A1, A2, A3, A4, A5, A6);
handler_for_arity!(A1, A2, A3, A4, A5, A6, A7);
handler_for_arity!(A1, A2, A3, A4, A5, A6, A7, A8);

/// A registered function with its argument types erased: one object, both ways to call it.
trait AnyHandler: Send + Sync {
    fn call(&self, args: &[u8], reply: &mut Vec<u8>) -> Result<(), RemoteError>;
    #[cfg_attr(not(any(feature = "msgpack", feature = "python")), allow(dead_code))]
    fn call_erased(
        &self,
        args: &mut dyn erased_serde::Deserializer<'_>,
        reply: ErasedReply<'_>,
    ) -> Result<(), RemoteError>;
}

/// A handler and the argument tuple it was registered with.
struct Typed<H, Args>(H, std::marker::PhantomData<fn(Args)>);

impl<Args: 'static, H: Handler<Args>> AnyHandler for Typed<H, Args> {
    #[inline]
    fn call(&self, args: &[u8], reply: &mut Vec<u8>) -> Result<(), RemoteError> {
        self.0.call(args, reply)
    }

    fn call_erased(
        &self,
        args: &mut dyn erased_serde::Deserializer<'_>,
        reply: ErasedReply<'_>,
    ) -> Result<(), RemoteError> {
        self.0.call_erased(args, reply)
    }
}

/// One registered function, callable both ways, with the name it was registered under.
pub(crate) struct Function {
    name: Box<str>,
    handler: Box<dyn AnyHandler>,
}

impl Function {
    /// Bincode bytes in, bytes out: what the native listener calls.
    #[inline]
    pub(crate) fn call(&self, args: &[u8], reply: &mut Vec<u8>) -> Result<(), RemoteError> {
        self.handler.call(args, reply)
    }

    /// The name it was registered under.
    #[inline]
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

/// The functions a manager serves, by name. Read-only once the manager starts, so
/// connection threads share it without a lock.
///
/// Keyed by the name's bytes: a request's function name is looked up before it is checked as
/// UTF-8, and a name that matches is the registered one, valid by construction
/// ([`Registry::get_by_bytes`] hands back that copy). Only names that match nothing are
/// checked, for the error that names them.
#[derive(Default)]
pub(crate) struct Registry {
    functions: FxHashMap<Box<[u8]>, Function>,
}

impl Registry {
    /// Adds `handler` under `name`; returns false if the name is taken.
    pub(crate) fn insert<Args: 'static, H: Handler<Args>>(
        &mut self,
        name: &str,
        handler: H,
    ) -> bool {
        if self.functions.contains_key(name.as_bytes()) {
            return false;
        }
        self.functions.insert(
            name.as_bytes().into(),
            Function {
                name: name.into(),
                handler: Box::new(Typed(handler, std::marker::PhantomData)),
            },
        );
        true
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Function> {
        self.get_by_bytes(name.as_bytes())
    }

    /// The function registered under the name whose bytes are `name`, not yet known to be
    /// UTF-8 (its [`Function::name`] is the checked one).
    #[inline]
    pub(crate) fn get_by_bytes(&self, name: &[u8]) -> Option<&Function> {
        self.functions.get(name)
    }

    /// Calls `name` through the serde boundary: arguments from `args` (a tuple in whatever
    /// format), the result to `reply`. For listeners that speak another wire format.
    #[cfg_attr(not(any(feature = "msgpack", feature = "python")), allow(dead_code))]
    pub(crate) fn call_erased(
        &self,
        name: &str,
        args: &mut dyn erased_serde::Deserializer<'_>,
        reply: ErasedReply<'_>,
    ) -> Result<(), RemoteError> {
        match self.get(name) {
            Some(function) => function
                .handler
                .call_erased(args, reply)
                .map_err(|e| name_the_function(e, name)),
            None => Err(RemoteError::new(
                RemoteErrorKind::UnknownFunction,
                format!("no function named `{name}`"),
            )),
        }
    }

    /// Registered names, sorted, for error messages and introspection.
    pub(crate) fn names(&self) -> Vec<&str> {
        // The manager's own (`monogusa.doors`) are not the user's to list.
        let mut names: Vec<&str> = self
            .functions
            .values()
            .map(Function::name)
            .filter(|name| !name.starts_with(crate::service::INTERNAL_PREFIX))
            .collect();
        names.sort_unstable();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another wire format (JSON here) calls the same registered functions through the serde
    /// boundary: arguments as a JSON array, the result serialized as JSON.
    #[test]
    fn functions_are_callable_through_any_serde_format() {
        let mut reg = Registry::default();
        reg.insert("add", |a: i64, b: i64| a + b);
        reg.insert("shout", |word: crate::Str, tail: crate::Bytes| {
            format!("{}{}", word.to_uppercase(), tail.len())
        });
        reg.insert("greet", |name: String| -> Result<String, String> {
            if name.is_empty() {
                Err("who?".into())
            } else {
                Ok(format!("hello {name}"))
            }
        });
        let call = |name: &str, args: &str| -> Result<String, RemoteError> {
            let mut json = serde_json::Deserializer::from_str(args);
            let mut erased = <dyn erased_serde::Deserializer>::erase(&mut json);
            let mut out = String::new();
            reg.call_erased(name, &mut erased, &mut |value| {
                out = serde_json::to_string(value).expect("serializes");
                Ok(())
            })?;
            Ok(out)
        };
        assert_eq!(call("add", "[2, 3]").unwrap(), "5");
        // JSON cannot lend its input here: borrowed arguments arrive owned, and work alike.
        assert_eq!(call("shout", r#"["hey", [1, 2]]"#).unwrap(), r#""HEY2""#);
        let err = call("shout", r#"[1, []]"#).unwrap_err();
        assert!(err.message().starts_with("`shout` expected"), "{err}");
        assert_eq!(call("greet", r#"["ann"]"#).unwrap(), r#""hello ann""#);
        let err = call("greet", r#"[""]"#).unwrap_err();
        assert_eq!(
            (err.kind(), err.message()),
            (RemoteErrorKind::Handler, "who?")
        );
        let err = call("add", r#"["two", 3]"#).unwrap_err();
        assert_eq!(err.kind(), RemoteErrorKind::BadArguments, "{err}");
        assert!(err.message().contains("(i64, i64)"), "{err}");
        assert_eq!(
            call("nope", "[]").unwrap_err().kind(),
            RemoteErrorKind::UnknownFunction
        );
    }

    fn call<Args: 'static, H: Handler<Args>, A: Serialize>(
        h: H,
        args: A,
    ) -> Result<Vec<u8>, RemoteError> {
        let mut reg = Registry::default();
        reg.insert("f", h);
        let mut encoded = Vec::new();
        codec::encode_into(&args, &mut encoded).unwrap();
        let mut out = Vec::new();
        reg.get("f").unwrap().call(&encoded, &mut out)?;
        Ok(out)
    }

    fn decoded<T: serde::de::DeserializeOwned>(bytes: Vec<u8>) -> T {
        codec::decode_exact(&bytes).unwrap()
    }

    #[test]
    fn arities_zero_to_eight() {
        assert_eq!(decoded::<u8>(call(|| 7u8, ()).unwrap()), 7);
        assert_eq!(decoded::<i64>(call(|a: i64| a + 1, (1i64,)).unwrap()), 2);
        let eight =
            |a: u8, b: u8, c: u8, d: u8, e: u8, f: u8, g: u8, h: u8| vec![a, b, c, d, e, f, g, h];
        let out = call(eight, (1u8, 2u8, 3u8, 4u8, 5u8, 6u8, 7u8, 8u8)).unwrap();
        assert_eq!(decoded::<Vec<u8>>(out), [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn arrays_reply_as_tuples_like_serde() {
        let out = call(|| [1u8, 2, 3], ()).unwrap();
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(decoded::<[u8; 3]>(out), [1, 2, 3]);
    }

    #[test]
    fn err_result_carries_display_text() {
        let err = call(|| Err::<u8, _>(std::io::Error::other("disk on fire")), ()).unwrap_err();
        assert_eq!(err.kind(), RemoteErrorKind::Handler);
        assert_eq!(err.message(), "disk on fire");
    }

    #[test]
    fn wrong_arguments_name_the_expected_types() {
        let err = call(|a: u64| a, ("text",)).unwrap_err();
        assert_eq!(err.kind(), RemoteErrorKind::BadArguments);
        assert!(err.message().contains("u64"), "{}", err.message());
    }

    #[test]
    fn duplicate_names_are_refused() {
        let mut reg = Registry::default();
        assert!(reg.insert("f", || 1u8));
        assert!(!reg.insert("f", || 2u8));
        assert_eq!(reg.names(), ["f"]);
    }
}
