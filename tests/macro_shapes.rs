//! What `#[service]` generates for the less common shapes of a trait, over a real socket:
//! raw identifiers travel without `r#`, `#[cfg]` methods compile in and out without shifting
//! the others, and `#[service(crate = "...")]` names a re-exported runtime.
#![allow(missing_docs)] // tests, not API

mod common;

use common::KEY;
use monogusa::{Client, Manager};

#[monogusa::service]
pub trait Keywords {
    fn r#type(&self) -> String;
    fn r#match(&self, r#in: u32) -> u32;
}

struct Words;

impl Keywords for Words {
    fn r#type(&self) -> String {
        "a type".into()
    }
    fn r#match(&self, r#in: u32) -> u32 {
        r#in + 1
    }
}

#[monogusa::service]
pub trait Gated {
    fn first(&self) -> u8;
    #[cfg(any())] // never compiled
    fn gone(&self) -> u8;
    #[cfg(not(any()))] // always compiled
    fn kept(&mut self) -> u8;
    fn last(&self) -> u8;
}

struct Gate;

impl Gated for Gate {
    fn first(&self) -> u8 {
        1
    }
    #[cfg(any())]
    fn gone(&self) -> u8 {
        2
    }
    #[cfg(not(any()))]
    fn kept(&mut self) -> u8 {
        3
    }
    fn last(&self) -> u8 {
        4
    }
}

/// A runtime re-exported under another path, as a facade crate would.
mod facade {
    pub use ::monogusa::*;
}

#[monogusa::service(crate = "crate::facade")]
pub trait Renamed {
    fn ping(&self) -> u8;
}

struct Pong;

impl Renamed for Pong {
    fn ping(&self) -> u8 {
        7
    }
}

#[test]
fn raw_names_cfg_methods_and_a_crate_path_work_end_to_end() {
    let manager = Manager::builder()
        .authkey(KEY)
        .serve("words", KeywordsServer::new(Words))
        .serve("gate", GatedServer::new(Gate))
        .serve("pong", RenamedServer::new(Pong))
        .build()
        .unwrap()
        .start()
        .unwrap();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let words = KeywordsClient::open(&client, "words").unwrap();
    assert_eq!(words.r#type().unwrap(), "a type");
    assert_eq!(words.r#match(41).unwrap(), 42);
    let gate = GatedClient::open(&client, "gate").unwrap();
    assert_eq!(gate.first().unwrap(), 1);
    assert_eq!(gate.kept().unwrap(), 3);
    assert_eq!(gate.last().unwrap(), 4);
    assert_eq!(
        RenamedClient::open(&client, "pong")
            .unwrap()
            .ping()
            .unwrap(),
        7
    );
    // The wire names have no `r#`, and the compiled-out method is not offered.
    let description = client.describe().unwrap();
    let methods = |name: &str| -> Vec<String> {
        description
            .objects
            .iter()
            .find(|o| o.name.as_deref() == Some(name))
            .unwrap()
            .methods
            .iter()
            .map(|m| m.name.clone())
            .collect()
    };
    assert_eq!(methods("words"), ["type", "match"]);
    assert_eq!(methods("gate"), ["first", "kept", "last"]);
}
