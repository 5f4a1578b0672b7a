//! The client side of an object: an id in a manager plus the reference that keeps it alive.
//! Generated stubs (`CounterClient`) are thin typed wrappers around an [`ObjectHandle`].

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::{Client, Pending};
use crate::error::Result;
use crate::message::Op;
use crate::service::ObjectRef;

/// An untyped handle to an object in a manager. Cloning it is cheap (no round trip); the
/// object lives while any handle to it, in any process, holds a reference.
///
/// Use the typed stubs that `#[monogusa::service]` generates; this is what they are built on.
pub struct ObjectHandle {
    client: Client,
    id: u64,
    service: &'static str,
    /// The session generation whose reference this handle owns; `None` for named objects,
    /// which live regardless, and for handles whose references the manager already dropped.
    counted: Option<u64>,
}

impl ObjectHandle {
    /// Opens the object the manager serves under `name`, checking it implements `service`.
    pub fn open(client: &Client, name: &str, service: &'static str) -> Result<Self> {
        let id: u64 = client.request(Op::Open { name, service }, &(), client.call_timeout())?;
        Ok(ObjectHandle {
            client: client.clone(),
            id,
            service,
            counted: None,
        })
    }

    /// Opens the built-in shared object `name` of `kind`, its service name (creating it from
    /// `args`).
    pub(crate) fn open_shared<A: Serialize>(
        client: &Client,
        kind: &'static str,
        name: &str,
        type_tag: &str,
        args: &A,
    ) -> Result<Self> {
        let op = Op::OpenShared {
            kind,
            name,
            type_tag,
        };
        let id: u64 = client.request(op, args, client.call_timeout())?;
        Ok(ObjectHandle {
            client: client.clone(),
            id,
            service: kind,
            counted: None,
        })
    }

    /// Creates a new object of the type registered as `type_id` (which must implement
    /// `service`), passing `args` (a tuple) to its constructor.
    pub fn create<A: Serialize>(
        client: &Client,
        type_id: &str,
        service: &'static str,
        args: &A,
    ) -> Result<Self> {
        let (id, generation) = client.create_object(type_id, service, args)?;
        Ok(ObjectHandle {
            client: client.clone(),
            id,
            service,
            counted: Some(generation),
        })
    }

    /// Reopens an object from a reference made by [`ObjectHandle::object_ref`], possibly in
    /// another process, taking a reference of this client's own.
    pub fn from_ref(client: &Client, object: &ObjectRef, service: &'static str) -> Result<Self> {
        // The manager checks the object's service; the ref's own claim is not trusted.
        let generation = client.retain_object(object.id, service)?;
        Ok(ObjectHandle {
            client: client.clone(),
            id: object.id,
            service,
            counted: Some(generation),
        })
    }

    /// A serde value naming this object, to send to another process.
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            id: self.id,
            service: self.service.to_string(),
        }
    }

    /// The object's id in its manager.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The client this handle calls through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The request for `method` of this object.
    fn method<'a>(&self, method: &'a str) -> Op<'a> {
        Op::Method {
            object: self.id,
            method,
        }
    }

    /// Calls `method` with the argument tuple `args` and decodes its result as `R`.
    pub fn call<R: DeserializeOwned, A: Serialize>(&self, method: &str, args: &A) -> Result<R> {
        self.client
            .request(self.method(method), args, self.client.call_timeout())
    }

    /// Calls `method` over a given connection (see `Client::request_on`).
    pub(crate) fn call_on<R: DeserializeOwned, A: Serialize>(
        &self,
        connection: &mut Option<crate::client::Connection>,
        method: &str,
        args: &A,
        timeout: Option<std::time::Duration>,
    ) -> Result<R> {
        self.client
            .request_on(connection, self.method(method), args, timeout)
    }

    /// Queues a call of `method` on the client's pipeline connection and returns its
    /// pending reply (see [`Client::send`]).
    pub fn send<R: DeserializeOwned, A: Serialize>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<Pending<R>> {
        self.client.send_op(self.method(method), args)
    }
}

impl Clone for ObjectHandle {
    fn clone(&self) -> Self {
        let counted = self
            .counted
            .filter(|&generation| self.client.share_object(self.id, generation));
        ObjectHandle {
            client: self.client.clone(),
            id: self.id,
            service: self.service,
            counted,
        }
    }
}

impl Drop for ObjectHandle {
    fn drop(&mut self) {
        if let Some(generation) = self.counted {
            self.client.release_object(self.id, generation);
        }
    }
}

impl std::fmt::Debug for ObjectHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectHandle")
            .field("service", &self.service)
            .field("id", &self.id)
            .field("manager", self.client.address())
            .finish()
    }
}
