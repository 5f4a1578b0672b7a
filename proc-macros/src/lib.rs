//! Procedural macros for [monogusa](https://crates.io/crates/monogusa): the `#[service]`
//! attribute, re-exported as `monogusa::service`. See its documentation there.

mod expand;
mod parse;

use proc_macro::TokenStream;

/// Turns a trait into a remote service: a typed client stub `<Trait>Client` and a server
/// wrapper `<Trait>Server<T>` for any implementation `T`. Documented in `monogusa`.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = proc_macro2::TokenStream::from(attr);
    let item = syn::parse_macro_input!(item as syn::ItemTrait);
    match parse::Service::from_trait(attr, &item) {
        Ok(service) => expand::expand(&item, &service).into(),
        Err(error) => {
            // Emit the trait as written too, so the user's other code still resolves its
            // names and only the real mistake is reported.
            let mut out = error.into_compile_error();
            out.extend(quote::ToTokens::into_token_stream(item));
            out.into()
        }
    }
}
