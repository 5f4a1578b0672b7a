//! Emits the client stub and the server wrapper for a checked service trait. Every path is
//! absolute through `::monogusa::__private` or `::core`, so the output compiles wherever the
//! trait is, whatever is imported there (even under `#![no_implicit_prelude]`).

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use syn::ItemTrait;

use crate::parse::{Method, Service};

pub fn expand(item: &ItemTrait, service: &Service) -> TokenStream {
    let vis = &item.vis;
    let trait_ident = &item.ident;
    let name = trait_ident.to_string();
    let client = format_ident!("{}Client", trait_ident);
    let server = format_ident!("{}Server", trait_ident);
    let sender = format_ident!("{}ClientSend", trait_ident);
    let m = quote!(::monogusa::__private);

    let infos = service.methods.iter().map(|method| {
        let method_name = method.ident.to_string();
        let mutates = method.mutates;
        quote!(#m::MethodInfo { name: #method_name, mutates: #mutates })
    });
    let stub_methods = service
        .methods
        .iter()
        .map(|method| client_method(method, vis, &m, false));
    let send_methods = service
        .methods
        .iter()
        .map(|method| client_method(method, vis, &m, true));
    let shared_arms = dispatch_arms(service, false, trait_ident, &name, &m);
    let exclusive_arms = dispatch_arms(service, true, trait_ident, &name, &m);

    let client_doc = format!(
        "Typed client stub for the [`{name}`] service: each method calls the same method of \
         an object in a manager and returns its result, or the [`monogusa::Error`] that \
         prevented it. A method whose trait signature returns `Result<T, E>` returns \
         `monogusa::Result<Result<T, E>>` here: the outer error is the call's, the inner the \
         application's.\n\nOpen a served object with [`{client}::open`], make a new one with \
         [`{client}::create`]. Clones share the object; it lives while any stub to it does."
    );
    let sender_doc = format!(
        "Pipelined calls on a [`{client}`], from [`{client}::send`]: the same methods, each \
         queueing its call and returning a [`Pending`](::monogusa::Pending) reply at once."
    );
    let server_doc = format!(
        "Wraps any implementation of [`{name}`] so a manager can serve it: \
         `Manager::builder().serve(\"name\", {server}::new(value))`, or return it from a \
         constructor passed to `register_type`."
    );

    quote! {
        #item

        #[doc = #client_doc]
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #vis struct #client {
            handle: #m::ObjectHandle,
        }

        impl #client {
            /// The service's name, as the manager knows it.
            #vis const SERVICE: &'static str = #name;

            /// Opens the object the manager serves under `name`. Fails with a remote error of
            /// kind `UnknownObject` if there is none, `WrongService` if it is of another service.
            #vis fn open(client: &#m::Client, name: &str) -> #m::Result<Self> {
                #m::ObjectHandle::open(client, name, Self::SERVICE).map(|handle| Self { handle })
            }

            /// Creates a new object in the manager from the type registered under this
            /// service's name, passing `args` (a tuple) to its constructor.
            #vis fn create<A: #m::serde::Serialize>(client: &#m::Client, args: A) -> #m::Result<Self> {
                Self::create_as(client, Self::SERVICE, args)
            }

            /// Creates a new object from the type registered as `type_id`, which must
            /// implement this service, passing `args` (a tuple) to its constructor.
            #vis fn create_as<A: #m::serde::Serialize>(
                client: &#m::Client,
                type_id: &str,
                args: A,
            ) -> #m::Result<Self> {
                #m::ObjectHandle::create(client, type_id, Self::SERVICE, &args)
                    .map(|handle| Self { handle })
            }

            /// Reopens an object from an [`ObjectRef`](::monogusa::ObjectRef), for example one
            /// received from another process, taking a reference of this client's own.
            #vis fn from_ref(client: &#m::Client, object: &#m::ObjectRef) -> #m::Result<Self> {
                #m::ObjectHandle::from_ref(client, object, Self::SERVICE).map(|handle| Self { handle })
            }

            /// A serde value naming this object, to send to another process. Keep this stub
            /// until the receiver has reopened it: the reference itself keeps nothing alive.
            #vis fn object_ref(&self) -> #m::ObjectRef {
                self.handle.object_ref()
            }

            /// The untyped handle underneath.
            #vis fn handle(&self) -> &#m::ObjectHandle {
                &self.handle
            }

            /// Pipelined calls: `stub.send().method(args)?` queues the call and returns a
            /// pending reply at once, so one thread can keep many calls in flight.
            #vis fn send(&self) -> #sender<'_> {
                #sender { handle: &self.handle }
            }

            #(#stub_methods)*
        }

        #[doc = #sender_doc]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug)]
        #vis struct #sender<'a> {
            handle: &'a #m::ObjectHandle,
        }

        impl #sender<'_> {
            #(#send_methods)*
        }

        #[doc = #server_doc]
        #vis struct #server<T>(T);

        impl<T> #server<T> {
            /// Wraps `inner` for serving.
            #vis fn new(inner: T) -> Self {
                #server(inner)
            }

            /// The implementation inside.
            #vis fn into_inner(self) -> T {
                self.0
            }
        }

        impl<T> #m::Service for #server<T>
        where
            T: #trait_ident + ::core::marker::Send + ::core::marker::Sync + 'static,
        {
            fn descriptor() -> &'static #m::ServiceDescriptor {
                static DESCRIPTOR: #m::ServiceDescriptor = #m::ServiceDescriptor {
                    name: #name,
                    methods: &[#(#infos),*],
                };
                &DESCRIPTOR
            }

            fn service(&self) -> &'static #m::ServiceDescriptor {
                <Self as #m::Service>::descriptor()
            }

            fn call_shared(
                &self,
                __monogusa_index: usize,
                __monogusa_args: &[u8],
                __monogusa_out: &mut ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<(), #m::RemoteError> {
                match __monogusa_index {
                    #(#shared_arms)*
                    _ => ::core::result::Result::Err(#m::no_such_method(#name, __monogusa_index)),
                }
            }

            fn call_exclusive(
                &mut self,
                __monogusa_index: usize,
                __monogusa_args: &[u8],
                __monogusa_out: &mut ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<(), #m::RemoteError> {
                match __monogusa_index {
                    #(#exclusive_arms)*
                    _ => ::core::result::Result::Err(#m::no_such_method(#name, __monogusa_index)),
                }
            }
        }
    }
}

/// One method of the stub: a call that waits for its result, or (`pipelined`) one that
/// returns a pending reply at once.
fn client_method(
    method: &Method,
    vis: &syn::Visibility,
    m: &TokenStream,
    pipelined: bool,
) -> TokenStream {
    let ident = &method.ident;
    let method_name = ident.to_string();
    let docs = &method.docs;
    let arg_names: Vec<_> = method.args.iter().map(|(name, _)| name).collect();
    let arg_types: Vec<_> = method.args.iter().map(|(_, ty)| ty).collect();
    let output = match &method.output {
        Some(ty) => quote!(#ty),
        None => quote!(()),
    };
    let (returns, action) = if pipelined {
        (quote!(#m::Pending<#output>), quote!(send))
    } else {
        (output, quote!(call))
    };
    quote! {
        #(#docs)*
        #vis fn #ident(&self, #(#arg_names: #arg_types),*) -> #m::Result<#returns> {
            self.handle.#action(#method_name, &(#(#arg_names,)*))
        }
    }
}

/// The match arms dispatching the `&mut self` methods (`exclusive`) or the `&self` ones.
fn dispatch_arms(
    service: &Service,
    exclusive: bool,
    trait_ident: &syn::Ident,
    service_name: &str,
    m: &TokenStream,
) -> Vec<TokenStream> {
    service
        .methods
        .iter()
        .enumerate()
        .filter(|(_, method)| method.mutates == exclusive)
        .map(|(index, method)| {
            let index = Literal::usize_unsuffixed(index);
            let ident = &method.ident;
            let method_name = ident.to_string();
            let arg_names: Vec<_> = method.args.iter().map(|(name, _)| name).collect();
            let arg_types: Vec<_> = method.args.iter().map(|(_, ty)| ty).collect();
            let receiver = if exclusive {
                quote!(&mut self.0)
            } else {
                quote!(&self.0)
            };
            quote! {
                #index => {
                    let (#(#arg_names,)*): (#(#arg_types,)*) =
                        #m::decode_args(__monogusa_args, #service_name, #method_name)?;
                    let __monogusa_value = <T as #trait_ident>::#ident(#receiver, #(#arg_names),*);
                    #m::encode_result(&__monogusa_value, __monogusa_out)
                }
            }
        })
        .collect()
}
