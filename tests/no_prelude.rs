//! Generated code names everything by absolute path: it compiles in a module without the
//! prelude, where neither serde nor anything else is imported, and works over a socket.
#![allow(missing_docs)] // tests, not API

#[no_implicit_prelude]
mod bare {
    #[::monogusa::service]
    pub trait Echo {
        /// Returns its argument.
        fn echo(&self, text: ::std::string::String) -> ::std::string::String;
        fn count(&mut self) -> u64;
        fn check(&self, ok: bool) -> ::core::result::Result<u8, ::std::string::String>;
    }

    #[derive(Default)]
    pub struct Impl {
        pub calls: u64,
    }

    impl Echo for Impl {
        fn echo(&self, text: ::std::string::String) -> ::std::string::String {
            text
        }
        fn count(&mut self) -> u64 {
            self.calls += 1;
            self.calls
        }
        fn check(&self, ok: bool) -> ::core::result::Result<u8, ::std::string::String> {
            if ok {
                ::core::result::Result::Ok(1)
            } else {
                ::core::result::Result::Err(<::std::string::String as ::core::convert::From<
                    &str,
                >>::from("not ok"))
            }
        }
    }
}

use bare::{EchoClient, EchoServer, Impl};
use monogusa::{Client, Manager};

#[test]
fn generated_code_needs_no_prelude_and_no_imports() {
    let manager = Manager::builder()
        .authkey("k")
        .serve("echo", EchoServer::new(Impl::default()))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), "k").unwrap();
    let echo = EchoClient::open(&client, "echo").unwrap();
    assert_eq!(echo.echo("hi".into()).unwrap(), "hi");
    assert_eq!(echo.count().unwrap(), 1);
    assert_eq!(echo.count().unwrap(), 2);
    assert_eq!(echo.check(true).unwrap(), Ok(1));
    assert_eq!(echo.check(false).unwrap(), Err("not ok".to_string()));
    assert_eq!(EchoClient::SERVICE, "Echo");
}
