//! Reads a service trait and checks it can be served: every misuse becomes a `syn::Error`
//! spanning the offending item, never a panic.

use proc_macro2::TokenStream;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, Ident, ItemTrait, Pat, ReceiverKind, ReturnType, Safety, TraitItem,
    TraitItemFn, Type,
};

/// Names the generated stub defines itself; a trait method may not take them.
const RESERVED: &[&str] = &[
    "open",
    "create",
    "create_as",
    "from_ref",
    "from_handle",
    "object_ref",
    "handle",
    "send",
    "with_timeout",
];

/// Prefix of the generated code's own local names, kept out of users' argument names.
pub const HIDDEN_PREFIX: &str = "__monogusa";

/// A checked service trait.
pub struct Service {
    pub methods: Vec<Method>,
    /// The path generated code names the runtime by: `::monogusa`, or what
    /// `#[service(crate = "...")]` says (for a renamed or re-exported dependency).
    pub krate: syn::Path,
    /// `#[service(name = "...")]`: the service's name on the wire, instead of the trait's.
    pub name: Option<String>,
    /// `#[service(hooks)]`: the implementation also implements `monogusa::Hooks`, and hears
    /// of shutdown and closed connections through it.
    pub hooks: bool,
}

/// A checked method.
pub struct Method {
    pub ident: Ident,
    /// The name on the wire: the identifier without `r#` (`r#type` travels as `type`).
    pub wire_name: String,
    /// The method's `#[doc]` attributes, copied onto the stub's method.
    pub docs: Vec<Attribute>,
    /// The method's `#[cfg]` attributes, copied onto every piece generated for it.
    pub cfgs: Vec<Attribute>,
    /// `&mut self`: runs alone on its object.
    pub mutates: bool,
    pub args: Vec<Arg>,
    /// `None` for a method returning `()`. For a call-error method, the `T` of its
    /// `Result<T, RemoteError>`.
    pub output: Option<Type>,
    /// Returns `Result<T, RemoteError>`: an error fails the call itself (the caller gets it as
    /// a remote error of its kind), and the stub returns `monogusa::Result<T>`.
    pub call_error: bool,
}

/// One argument of a method.
pub struct Arg {
    pub ident: Ident,
    pub ty: Type,
    pub borrow: Borrow,
}

/// How an argument reaches the method: owned (decoded as its own type), or borrowed from
/// the call's frame.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Borrow {
    Owned,
    /// `&str`
    Str,
    /// `&[u8]`
    Bytes,
    /// `Cow<'_, str>`
    CowStr,
    /// `Cow<'_, [u8]>`
    CowBytes,
    /// `&Caller<'_>`: not sent; the manager passes who is calling.
    Caller,
}

/// Collects every error instead of stopping at the first, so one build shows them all.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, span: impl Spanned, message: impl std::fmt::Display) {
        let error = syn::Error::new(span.span(), message);
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn push_spanned(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        let error = syn::Error::new_spanned(tokens, message);
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }
}

impl Service {
    pub fn from_trait(attr: TokenStream, item: &ItemTrait) -> syn::Result<Service> {
        let mut errors = Errors::default();
        let Arguments { krate, name, hooks } = parse_arguments(attr, &mut errors);
        if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
            errors.push_spanned(
                &item.generics,
                "a service trait cannot be generic: every call crosses the wire as concrete types",
            );
        }
        if let Some(unsafety) = &item.unsafety {
            errors.push(unsafety, "a service trait cannot be `unsafe`");
        }
        if item.modifiers.require_empty().is_err() {
            errors.push(&item.ident, "a service trait cannot be an auto trait");
        }
        if !item.supertraits.is_empty() {
            errors.push_spanned(
                &item.supertraits,
                "a service trait cannot have supertraits: only its own methods are served",
            );
        }
        let mut methods = Vec::new();
        for trait_item in &item.items {
            match trait_item {
                TraitItem::Fn(function) => {
                    if let Some(method) = check_method(function, &mut errors) {
                        methods.push(method);
                    }
                }
                other => errors.push_spanned(
                    other,
                    "a service trait may contain only methods (no associated types, consts or macros)",
                ),
            }
        }
        match errors.0 {
            Some(error) => Err(error),
            None => Ok(Service {
                methods,
                krate,
                name,
                hooks,
            }),
        }
    }
}

/// What `#[service(...)]` says.
struct Arguments {
    krate: syn::Path,
    name: Option<String>,
    hooks: bool,
}

/// `#[service]`, or with any of `crate = "path"`, `name = "wire name"`, `hooks`.
fn parse_arguments(attr: TokenStream, errors: &mut Errors) -> Arguments {
    let mut arguments = Arguments {
        krate: syn::parse_quote!(::monogusa),
        name: None,
        hooks: false,
    };
    if attr.is_empty() {
        return arguments;
    }
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            let path: syn::LitStr = meta.value()?.parse()?;
            arguments.krate = path.parse()?;
            Ok(())
        } else if meta.path.is_ident("name") {
            let name: syn::LitStr = meta.value()?.parse()?;
            if name.value().is_empty() {
                return Err(syn::Error::new(
                    name.span(),
                    "a service's name cannot be empty",
                ));
            }
            arguments.name = Some(name.value());
            Ok(())
        } else if meta.path.is_ident("hooks") {
            arguments.hooks = true;
            Ok(())
        } else {
            Err(meta.error(
                "#[service] takes `crate = \"path\"` (the path to monogusa), `name = \"...\"` \
                 (the name on the wire) and `hooks` (the implementation implements \
                 monogusa::Hooks)",
            ))
        }
    });
    if let Err(error) = syn::parse::Parser::parse2(parser, attr) {
        errors.push(error.span(), error);
    }
    arguments
}

fn check_method(function: &TraitItemFn, errors: &mut Errors) -> Option<Method> {
    let sig = &function.sig;
    let name = sig.ident.to_string();
    if RESERVED.contains(&name.as_str()) {
        errors.push(
            &sig.ident,
            format_args!(
                "`{name}` clashes with a function the generated client stub defines \
                 (reserved: {}); rename the method",
                RESERVED.join(", ")
            ),
        );
    }
    if name.starts_with(HIDDEN_PREFIX) {
        errors.push(
            &sig.ident,
            format_args!("names starting with `{HIDDEN_PREFIX}` are reserved"),
        );
    }
    if let Some(asyncness) = &sig.asyncness {
        errors.push(
            asyncness,
            "`async fn` is not supported: service methods are blocking calls",
        );
    }
    if let Some(constness) = &sig.constness {
        errors.push(constness, "a service method cannot be `const`");
    }
    if let Safety::Unsafe(unsafety) = &sig.safety {
        errors.push(unsafety, "a service method cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        errors.push_spanned(abi, "a service method cannot have an `extern` ABI");
    }
    if let Some(variadic) = &sig.variadic {
        errors.push_spanned(variadic, "a service method cannot be variadic");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push_spanned(
            &sig.generics,
            "a service method cannot be generic: its arguments cross the wire as concrete types",
        );
    }

    let mut mutates = false;
    match sig.receiver() {
        None => errors.push(
            &sig.ident,
            "a service method needs a `&self` or `&mut self` receiver: it runs on an object",
        ),
        Some(receiver) => match &receiver.kind {
            ReceiverKind::Reference(_, lifetime, mutability) => {
                mutates = mutability.is_some();
                if let Some(lifetime) = lifetime {
                    errors.push(
                        lifetime,
                        "write the receiver as `&self` or `&mut self`, without a lifetime",
                    );
                }
            }
            _ => errors.push_spanned(
                receiver,
                "`self` by value (or a typed `self`) is not supported: the object stays in the \
                 manager; use `&self` or `&mut self`",
            ),
        },
    }

    let mut args = Vec::new();
    for input in sig
        .inputs
        .iter()
        .skip(usize::from(sig.receiver().is_some()))
    {
        let FnArg::Typed(typed) = input else { continue };
        let ident = match &*typed.pat {
            Pat::Ident(pat)
                if pat.by_ref.is_none() && pat.mutability.is_none() && pat.subpat.is_none() =>
            {
                if pat.ident.to_string().starts_with(HIDDEN_PREFIX) {
                    errors.push(
                        &pat.ident,
                        format_args!("names starting with `{HIDDEN_PREFIX}` are reserved"),
                    );
                }
                Some(pat.ident.clone())
            }
            other => {
                errors.push_spanned(
                    other,
                    "service method arguments must be plain names, like `key: String`",
                );
                None
            }
        };
        let borrow = if is_caller(&typed.ty) {
            Borrow::Caller
        } else {
            borrow_kind(&typed.ty, errors)
        };
        if borrow == Borrow::Owned {
            check_owned(&typed.ty, "argument", errors);
        }
        if let Some(ident) = ident {
            args.push(Arg {
                ident,
                ty: (*typed.ty).clone(),
                borrow,
            });
        }
    }

    let (output, call_error) = match &sig.output {
        ReturnType::Default => (None, false),
        ReturnType::Type(_, ty) => {
            check_owned(ty, "result", errors);
            match call_result(ty) {
                Some(ok) => (Some(ok), true),
                None => (Some((**ty).clone()), false),
            }
        }
    };

    if errors.0.is_some() {
        // Nothing is generated once anything failed; the checks above still ran, so every
        // mistake is reported in one build.
        return None;
    }
    let attrs_named = |name: &str| -> Vec<Attribute> {
        function
            .attrs
            .iter()
            .filter(|a| a.path().is_ident(name))
            .cloned()
            .collect()
    };
    Some(Method {
        ident: sig.ident.clone(),
        wire_name: syn::ext::IdentExt::unraw(&sig.ident).to_string(),
        docs: attrs_named("doc"),
        cfgs: attrs_named("cfg"),
        mutates,
        args,
        output,
        call_error,
    })
}

/// Whether `ty` is `&Caller<'_>` (any path ending in `Caller`): the call's context, which the
/// manager passes instead of the wire.
fn is_caller(ty: &Type) -> bool {
    let Type::Reference(r) = ty else { return false };
    r.mutability.is_none()
        && matches!(&*r.elem, Type::Path(p) if p.qself.is_none()
            && p.path.segments.last().is_some_and(|s| s.ident == "Caller"))
}

/// The `T` of `Result<T, RemoteError>` (any paths ending in those names): a method whose
/// errors are the call's own.
fn call_result(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if p.qself.is_some() || last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(generics) = &last.arguments else {
        return None;
    };
    let mut types = generics.args.iter().filter_map(|arg| match arg {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    });
    let (ok, err) = (types.next()?, types.next()?);
    let is_remote_error = matches!(err, Type::Path(e) if e.qself.is_none()
        && e.path.segments.last().is_some_and(|s| s.ident == "RemoteError"));
    is_remote_error.then(|| ok.clone())
}

/// Whether `ty` is one of the argument types decoded in place: `&str`, `&[u8]`,
/// `Cow<'_, str>`, `Cow<'_, [u8]>` (a named lifetime is refused: the frame lives only for the
/// call).
fn borrow_kind(ty: &Type, errors: &mut Errors) -> Borrow {
    let is_str =
        |ty: &Type| matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident("str"));
    let is_bytes = |ty: &Type| matches!(ty, Type::Slice(s) if matches!(&*s.elem, Type::Path(p) if p.qself.is_none() && p.path.is_ident("u8")));
    let refuse_named = |lifetime: Option<&syn::Lifetime>, errors: &mut Errors| {
        if let Some(lifetime) = lifetime.filter(|l| l.ident != "_") {
            errors.push(
                lifetime,
                "a borrowed argument lives only for its call: write it without a lifetime \
                 (`&str`, `Cow<'_, str>`)",
            );
        }
    };
    match ty {
        Type::Reference(r) if r.mutability.is_none() && (is_str(&r.elem) || is_bytes(&r.elem)) => {
            refuse_named(r.lifetime.as_ref(), errors);
            if is_str(&r.elem) {
                Borrow::Str
            } else {
                Borrow::Bytes
            }
        }
        Type::Path(p) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else {
                return Borrow::Owned;
            };
            let syn::PathArguments::AngleBracketed(generics) = &last.arguments else {
                return Borrow::Owned;
            };
            if last.ident != "Cow" {
                return Borrow::Owned;
            }
            let mut lifetime = None;
            let mut inner = None;
            for arg in &generics.args {
                match arg {
                    syn::GenericArgument::Lifetime(l) => lifetime = Some(l),
                    syn::GenericArgument::Type(t) => inner = Some(t),
                    _ => return Borrow::Owned,
                }
            }
            match inner {
                Some(t) if is_str(t) => {
                    refuse_named(lifetime, errors);
                    Borrow::CowStr
                }
                Some(t) if is_bytes(t) => {
                    refuse_named(lifetime, errors);
                    Borrow::CowBytes
                }
                _ => Borrow::Owned,
            }
        }
        _ => Borrow::Owned,
    }
}

/// Arguments and results travel by value: references and `impl Trait` cannot.
fn check_owned(ty: &Type, what: &str, errors: &mut Errors) {
    match ty {
        Type::Reference(_) => errors.push_spanned(
            ty,
            format_args!(
                "a service method's {what} crosses the wire by value: use an owned type \
                 (`Vec<T>` for `&[T]`, `T` for `&T`); of references, only `&str` and \
                 `&[u8]` arguments are supported, decoded in place"
            ),
        ),
        Type::ImplTrait(_) => errors.push_spanned(
            ty,
            format_args!(
                "a service method's {what} cannot be `impl Trait`: name a concrete serde type"
            ),
        ),
        _ => {}
    }
}
