//! Emits the client stub and the server wrapper for a checked service trait, one generator
//! method per emitted item (as tarpc does). Every path is absolute, through the runtime's
//! `__private` module (`::monogusa` unless `#[service(crate = "...")]` says otherwise) or
//! `::core`, so the output compiles wherever the trait is, whatever is imported there (even
//! under `#![no_implicit_prelude]`).
//!
//! A method's `#[cfg]` attributes go on every piece made for it. Dispatch indices are then
//! counted by the compiler, not the macro: the index of method `i` is the number of enabled
//! methods before it, so a method compiled out shifts nothing.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};
use syn::ItemTrait;

use crate::parse::{Borrow, Method, Service};

pub fn expand(item: &ItemTrait, service: &Service) -> TokenStream {
    let generator = Generator::new(item, service);
    let items = [
        generator.trait_as_written(),
        generator.client_struct(),
        generator.client_impl(),
        generator.sender_struct(),
        generator.sender_impl(),
        generator.server_struct(),
        generator.server_impl(),
        generator.service_impl(),
    ];
    quote!(#(#items)*)
}

/// What every emitted item is made from.
struct Generator<'a> {
    item: &'a ItemTrait,
    methods: &'a [Method],
    vis: &'a syn::Visibility,
    trait_ident: &'a Ident,
    /// The service's name on the wire (the trait's name without `r#`, unless
    /// `#[service(name = "...")]` says otherwise).
    name: String,
    /// `#[service(hooks)]`.
    hooks: bool,
    client: Ident,
    sender: Ident,
    server: Ident,
    /// `<runtime>::__private`.
    private: TokenStream,
}

impl<'a> Generator<'a> {
    fn new(item: &'a ItemTrait, service: &'a Service) -> Self {
        let trait_ident = &item.ident;
        let krate = &service.krate;
        Generator {
            item,
            methods: &service.methods,
            vis: &item.vis,
            trait_ident,
            name: service
                .name
                .clone()
                .unwrap_or_else(|| syn::ext::IdentExt::unraw(trait_ident).to_string()),
            hooks: service.hooks,
            client: format_ident!("{}Client", syn::ext::IdentExt::unraw(trait_ident)),
            sender: format_ident!("{}ClientSend", syn::ext::IdentExt::unraw(trait_ident)),
            server: format_ident!("{}Server", syn::ext::IdentExt::unraw(trait_ident)),
            private: quote!(#krate::__private),
        }
    }

    /// The trait, unchanged.
    fn trait_as_written(&self) -> TokenStream {
        let item = self.item;
        quote!(#item)
    }

    fn client_struct(&self) -> TokenStream {
        let Generator {
            vis,
            client,
            private: m,
            name,
            ..
        } = self;
        let doc = format!(
            "Typed client stub for the [`{name}`] service: each method calls the same method \
             of an object in a manager and returns its result, or the [`monogusa::Error`] that \
             prevented it. A method whose trait signature returns `Result<T, E>` returns \
             `monogusa::Result<Result<T, E>>` here: the outer error is the call's, the inner the \
             application's.\n\nOpen a served object with [`{client}::open`], make a new one with \
             [`{client}::create`]. Clones share the object; it lives while any stub to it does."
        );
        quote! {
            #[doc = #doc]
            #[derive(::core::clone::Clone, ::core::fmt::Debug)]
            #vis struct #client<H = #m::ObjectHandle> {
                handle: H,
            }
        }
    }

    fn client_impl(&self) -> TokenStream {
        let Generator {
            vis,
            client,
            sender,
            private: m,
            name,
            ..
        } = self;
        let methods = self
            .methods
            .iter()
            .map(|method| self.client_method(method, false));
        quote! {
            impl #client {
                /// The service's name, as the manager knows it.
                #vis const SERVICE: &'static str = #name;

                /// Opens the object the manager serves under `name`. Fails with a remote error
                /// of kind `UnknownObject` if there is none, `WrongService` if it is of another
                /// service.
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

                /// Reopens an object from an [`ObjectRef`](::monogusa::ObjectRef), for example
                /// one received from another process, taking a reference of this client's own.
                #vis fn from_ref(client: &#m::Client, object: &#m::ObjectRef) -> #m::Result<Self> {
                    #m::ObjectHandle::from_ref(client, object, Self::SERVICE).map(|handle| Self { handle })
                }

                /// A serde value naming this object, to send to another process. Keep this stub
                /// until the receiver has reopened it: the reference itself keeps nothing alive.
                #vis fn object_ref(&self) -> #m::ObjectRef {
                    self.handle.object_ref()
                }


                /// Another stub on the same object whose calls time out after `timeout`
                /// (instead of the client's call timeout), failing with
                /// `Error::Timeout(Phase::Call)`.
                #vis fn with_timeout(&self, timeout: ::core::time::Duration) -> Self {
                    Self { handle: self.handle.with_timeout(timeout) }
                }

            }

            impl<H: #m::Calls> #client<H> {
                /// A stub over `handle`: how the crate's own built-in kinds reach other homes
                /// than a manager; applications use `open`, `create` and `from_ref`.
                #[doc(hidden)]
                #vis fn from_handle(handle: H) -> Self {
                    Self { handle }
                }

                /// The untyped handle underneath.
                #vis fn handle(&self) -> &H {
                    &self.handle
                }

                /// Pipelined calls: `stub.send().method(args)?` queues the call and returns a
                /// pending reply at once, so one thread can keep many calls in flight.
                #vis fn send(&self) -> #sender<'_, H> {
                    #sender { handle: &self.handle }
                }

                #(#methods)*
            }
        }
    }

    fn sender_struct(&self) -> TokenStream {
        let Generator {
            vis,
            client,
            sender,
            private: m,
            ..
        } = self;
        let doc = format!(
            "Pipelined calls on a [`{client}`], from [`{client}::send`]: the same methods, each \
             queueing its call and returning a [`Pending`](::monogusa::Pending) reply at once."
        );
        quote! {
            #[doc = #doc]
            #vis struct #sender<'a, H = #m::ObjectHandle> {
                handle: &'a H,
            }

            // By hand: derived ones would ask `H: Clone` of a struct that holds a reference.
            impl<H> ::core::clone::Clone for #sender<'_, H> {
                fn clone(&self) -> Self {
                    *self
                }
            }

            impl<H> ::core::marker::Copy for #sender<'_, H> {}

            impl<H: ::core::fmt::Debug> ::core::fmt::Debug for #sender<'_, H> {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.debug_struct(::core::stringify!(#sender)).field("handle", self.handle).finish()
                }
            }
        }
    }

    fn sender_impl(&self) -> TokenStream {
        let sender = &self.sender;
        let m = &self.private;
        let methods = self
            .methods
            .iter()
            .map(|method| self.client_method(method, true));
        quote! {
            impl<H: #m::Calls> #sender<'_, H> {
                #(#methods)*
            }
        }
    }

    fn server_struct(&self) -> TokenStream {
        let Generator {
            vis, server, name, ..
        } = self;
        let doc = format!(
            "Wraps any implementation of [`{name}`] so a manager can serve it: \
             `Manager::builder().serve(\"name\", {server}::new(value))`, or return it from a \
             constructor passed to `register_type`."
        );
        quote! {
            #[doc = #doc]
            #vis struct #server<T>(T);
        }
    }

    fn server_impl(&self) -> TokenStream {
        let Generator { vis, server, .. } = self;
        quote! {
            impl<T> #server<T> {
                /// Wraps `inner` for serving.
                #vis fn new(inner: T) -> Self {
                    #server(inner)
                }

                /// The implementation inside.
                #vis fn into_inner(self) -> T {
                    self.0
                }

                /// The implementation inside, borrowed.
                #vis fn inner(&self) -> &T {
                    &self.0
                }
            }
        }
    }

    fn service_impl(&self) -> TokenStream {
        let Generator {
            server,
            trait_ident,
            private: m,
            name,
            ..
        } = self;
        let infos = self.methods.iter().map(|method| {
            let cfgs = &method.cfgs;
            let wire_name = &method.wire_name;
            let mutates = method.mutates;
            quote!(#(#cfgs)* #m::MethodInfo { name: #wire_name, mutates: #mutates },)
        });
        let native = quote! {
            __monogusa_args: &[u8],
            __monogusa_out: &mut ::std::vec::Vec<u8>,
        };
        let erased = quote! {
            __monogusa_args: &mut dyn #m::erased_serde::Deserializer<'_>,
            __monogusa_reply: #m::ErasedReply<'_>,
        };
        let shared = self.dispatch_fn(quote!(call_shared), quote!(&self), &native, false, false);
        let exclusive = self.dispatch_fn(
            quote!(call_exclusive),
            quote!(&mut self),
            &native,
            true,
            false,
        );
        let shared_erased = self.dispatch_fn(
            quote!(call_shared_erased),
            quote!(&self),
            &erased,
            false,
            true,
        );
        let exclusive_erased = self.dispatch_fn(
            quote!(call_exclusive_erased),
            quote!(&mut self),
            &erased,
            true,
            true,
        );
        let (hooks_bound, hooks) = if self.hooks {
            (
                quote!(+ #m::Hooks),
                quote! {
                    fn shutdown(&self) {
                        <T as #m::Hooks>::shutdown(&self.0)
                    }

                    fn tracks_connections(&self) -> bool {
                        <T as #m::Hooks>::tracks_connections(&self.0)
                    }

                    fn connection_closed(&self, connection: u64) {
                        <T as #m::Hooks>::connection_closed(&self.0, connection)
                    }
                },
            )
        } else {
            (TokenStream::new(), TokenStream::new())
        };
        quote! {
            impl<T> #m::Service for #server<T>
            where
                T: #trait_ident #hooks_bound + ::core::marker::Send + ::core::marker::Sync + 'static,
            {
                fn descriptor() -> &'static #m::ServiceDescriptor {
                    static DESCRIPTOR: #m::ServiceDescriptor = #m::ServiceDescriptor {
                        name: #name,
                        methods: &[#(#infos)*],
                    };
                    &DESCRIPTOR
                }

                fn service(&self) -> &'static #m::ServiceDescriptor {
                    <Self as #m::Service>::descriptor()
                }

                fn as_any(&self) -> ::core::option::Option<&dyn ::core::any::Any> {
                    ::core::option::Option::Some(self)
                }

                #shared
                #exclusive
                #shared_erased
                #exclusive_erased
                #hooks
            }
        }
    }

    /// One of the four `Service` dispatch methods: `receiver` and `params` are its signature,
    /// `exclusive` and `erased` pick which methods it runs and how.
    fn dispatch_fn(
        &self,
        name: TokenStream,
        receiver: TokenStream,
        params: &TokenStream,
        exclusive: bool,
        erased: bool,
    ) -> TokenStream {
        let Generator {
            private: m,
            name: service_name,
            ..
        } = self;
        let indices = self.index_consts();
        let arms = self.dispatch_arms(exclusive, erased);
        quote! {
            fn #name(
                #receiver,
                __monogusa_index: usize,
                #params
                __monogusa_caller: &#m::Caller<'_>,
            ) -> ::core::result::Result<(), #m::RemoteError> {
                let _ = __monogusa_caller;
                #indices
                match __monogusa_index {
                    #(#arms)*
                    _ => ::core::result::Result::Err(#m::no_such_method(#service_name, __monogusa_index)),
                }
            }
        }
    }

    /// `const __MONOGUSA_INDEX_<i>: usize` for each method: the number of methods before it
    /// that are compiled in (a method's `#[cfg]` predicates, evaluated by `cfg!`).
    fn index_consts(&self) -> TokenStream {
        let mut consts = Vec::new();
        let mut before: Vec<TokenStream> = Vec::new();
        for (i, method) in self.methods.iter().enumerate() {
            let ident = format_ident!("__MONOGUSA_INDEX_{}", i);
            let cfgs = &method.cfgs;
            consts.push(quote! {
                #(#cfgs)*
                #[allow(non_upper_case_globals, dead_code)]
                const #ident: usize = 0 #(+ #before)*;
            });
            before.push(enabled(&method.cfgs));
        }
        quote!(#(#consts)*)
    }

    /// One method of the stub: a call that waits for its result, or (`pipelined`) one that
    /// returns a pending reply at once.
    fn client_method(&self, method: &Method, pipelined: bool) -> TokenStream {
        let Generator {
            vis, private: m, ..
        } = self;
        let ident = &method.ident;
        let wire_name = &method.wire_name;
        let docs = &method.docs;
        let cfgs = &method.cfgs;
        let sent = method
            .args
            .iter()
            .filter(|arg| arg.borrow != Borrow::Caller);
        let arg_names: Vec<_> = sent.clone().map(|arg| &arg.ident).collect();
        let arg_types: Vec<_> = sent.map(|arg| &arg.ty).collect();
        let output = match &method.output {
            Some(ty) => quote!(#ty),
            None => quote!(()),
        };
        let (returns, action, handle) = if pipelined {
            (
                quote!(#m::Pending<#output>),
                quote!(send),
                quote!(self.handle),
            )
        } else {
            (output, quote!(call), quote!(&self.handle))
        };
        quote! {
            #(#docs)*
            #(#cfgs)*
            #vis fn #ident(&self, #(#arg_names: #arg_types),*) -> #m::Result<#returns> {
                #m::Calls::#action(#handle, #wire_name, &(#(#arg_names,)*))
            }
        }
    }

    /// The match arms dispatching the `&mut self` methods (`exclusive`) or the `&self` ones,
    /// on the native path or (`erased`) through the serde boundary.
    fn dispatch_arms(&self, exclusive: bool, erased: bool) -> Vec<TokenStream> {
        let Generator {
            trait_ident,
            private: m,
            name: service_name,
            ..
        } = self;
        self.methods
            .iter()
            .enumerate()
            .filter(|(_, method)| method.mutates == exclusive)
            .map(|(index, method)| {
                let index = format_ident!("__MONOGUSA_INDEX_{}", index);
                let ident = &method.ident;
                let wire_name = &method.wire_name;
                let cfgs = &method.cfgs;
                let sent = method.args.iter().filter(|arg| arg.borrow != Borrow::Caller);
                let arg_names: Vec<_> = sent.clone().map(|arg| &arg.ident).collect();
                // Borrowed arguments are decoded as the wire types that lend from the
                // frame, then handed over as the method declares them.
                let wire_types: Vec<TokenStream> = sent
                    .map(|arg| match arg.borrow {
                        Borrow::Owned => {
                            let ty = &arg.ty;
                            quote!(#ty)
                        }
                        Borrow::Str | Borrow::CowStr => quote!(#m::WireStr<'_>),
                        Borrow::Bytes | Borrow::CowBytes => quote!(#m::WireBytes<'_>),
                        Borrow::Caller => unreachable!("the caller is not sent"),
                    })
                    .collect();
                let passed: Vec<TokenStream> = method
                    .args
                    .iter()
                    .map(|arg| {
                        let name = &arg.ident;
                        match arg.borrow {
                            Borrow::Owned => quote!(#name),
                            Borrow::Str => quote!(#name.as_str()),
                            Borrow::Bytes => quote!(#name.as_slice()),
                            Borrow::CowStr | Borrow::CowBytes => quote!(#name.0),
                            Borrow::Caller => quote!(__monogusa_caller),
                        }
                    })
                    .collect();
                let receiver = if exclusive {
                    quote!(&mut self.0)
                } else {
                    quote!(&self.0)
                };
                let (decode, reply) = if erased {
                    (
                        quote!(#m::decode_erased_args(__monogusa_args, #service_name, #wire_name)?),
                        quote!(__monogusa_reply(&__monogusa_value)),
                    )
                } else {
                    (
                        quote!(#m::decode_args(__monogusa_args, #service_name, #wire_name)?),
                        quote!(#m::encode_result(&__monogusa_value, __monogusa_out)),
                    )
                };
                // A call-error method's error is the call's.
                let fails = method.call_error.then(|| quote!(?));
                quote! {
                    #(#cfgs)*
                    #index => {
                        let (#(#arg_names,)*): (#(#wire_types,)*) = #decode;
                        let __monogusa_value = <T as #trait_ident>::#ident(#receiver, #(#passed),*)#fails;
                        #reply
                    }
                }
            })
            .collect()
    }
}

/// `1` for a method without `#[cfg]`; `(cfg!(a) && cfg!(b)) as usize` for one with them.
fn enabled(cfgs: &[syn::Attribute]) -> TokenStream {
    if cfgs.is_empty() {
        return quote!(1usize);
    }
    let predicates = cfgs.iter().filter_map(|attr| match &attr.meta {
        syn::Meta::List(list) => Some(list.tokens.clone()),
        _ => None,
    });
    quote!(((true #(&& ::core::cfg!(#predicates))*) as usize))
}
