//! The client side of an object: an id in a manager plus the reference that keeps it alive.
//! Generated stubs (`CounterClient`) are thin typed wrappers around an [`ObjectHandle`].

use serde::Serialize;
use serde::de::DeserializeOwned;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::client::{Client, Pending};
use crate::error::{Error, RemoteErrorKind, Result};
use crate::service::ObjectRef;
use crate::wire::message::Op;

/// An untyped handle to an object in a manager. Cloning it is cheap (no round trip); the
/// object lives while any handle to it, in any process, holds a reference.
///
/// Use the typed stubs that `#[monogusa::service]` generates; this is what they are built on.
pub struct ObjectHandle {
    client: Client,
    /// The object's id; replaced when a handle opened by name reopens it after a restart.
    id: AtomicU64,
    service: &'static str,
    /// How to open the object again by name, for handles opened by name.
    reopen: Option<Arc<Reopen>>,
    /// The session generation whose reference this handle owns; `None` for named objects,
    /// which live regardless, and for handles whose references the manager already dropped.
    counted: Option<u64>,
    /// The timeout of this handle's calls, instead of the client's (`with_timeout`).
    timeout: Option<Duration>,
}

/// How a handle opened by name finds its object again after the manager restarted: the
/// object its id named is gone with the old run, and the name is what the user meant.
#[derive(Debug)]
enum Reopen {
    Served {
        name: String,
    },
    Shared {
        name: String,
        type_tag: String,
        /// The creation arguments, encoded.
        args: Vec<u8>,
    },
}

/// Already-encoded arguments, written as they are.
struct Encoded<'a>(&'a [u8]);

impl Serialize for Encoded<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        // A tuple of bytes: the codec writes each as one byte, with no length prefix.
        let mut tuple = s.serialize_tuple(self.0.len())?;
        for byte in self.0 {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }
}

fn is_stale(error: &Error) -> bool {
    matches!(error, Error::Remote(e) if e.kind() == RemoteErrorKind::StaleObject)
}

impl ObjectHandle {
    /// Opens the object the manager serves under `name`, checking it implements `service`.
    ///
    /// If the manager restarts, calls through the handle reopen `name` in the new run (the
    /// call that found the handle stale never ran, so it is simply sent again).
    pub fn open(client: &Client, name: &str, service: &'static str) -> Result<Self> {
        let id: u64 = client.request(Op::Open { name, service }, &(), client.call_timeout())?;
        Ok(ObjectHandle {
            client: client.clone(),
            id: AtomicU64::new(id),
            service,
            reopen: Some(Arc::new(Reopen::Served {
                name: name.to_string(),
            })),
            counted: None,
            timeout: None,
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
        let mut encoded = Vec::new();
        crate::wire::codec::encode_into(args, &mut encoded)?;
        Ok(ObjectHandle {
            client: client.clone(),
            id: AtomicU64::new(id),
            service: kind,
            reopen: Some(Arc::new(Reopen::Shared {
                name: name.to_string(),
                type_tag: type_tag.to_string(),
                args: encoded,
            })),
            counted: None,
            timeout: None,
        })
    }

    /// Opens the object again by name in the manager's new run; false for handles that
    /// cannot (created objects: what they named is gone for good).
    fn reopen(&self) -> Result<bool> {
        let Some(reopen) = &self.reopen else {
            return Ok(false);
        };
        let timeout = self.client.call_timeout();
        let id: u64 = match &**reopen {
            Reopen::Served { name } => self.client.request(
                Op::Open {
                    name,
                    service: self.service,
                },
                &(),
                timeout,
            )?,
            Reopen::Shared {
                name,
                type_tag,
                args,
            } => self.client.request(
                Op::OpenShared {
                    kind: self.service,
                    name,
                    type_tag,
                },
                &Encoded(args),
                timeout,
            )?,
        };
        self.id.store(id, Ordering::Release);
        log::debug!("reopened {} after a manager restart", self.service);
        Ok(true)
    }

    /// Runs `call` with the current request; once more after reopening if the handle was
    /// stale. Safe for any call: a stale request is refused before anything runs.
    fn retrying_stale<R>(
        &self,
        method: &str,
        mut call: impl FnMut(Op<'_>) -> Result<R>,
    ) -> Result<R> {
        match call(self.method(method)) {
            Err(e) if is_stale(&e) && self.reopen()? => call(self.method(method)),
            other => other,
        }
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
            id: AtomicU64::new(id),
            service,
            reopen: None,
            counted: Some(generation),
            timeout: None,
        })
    }

    /// Reopens an object from a reference made by [`ObjectHandle::object_ref`], possibly in
    /// another process, taking a reference of this client's own.
    pub fn from_ref(client: &Client, object: &ObjectRef, service: &'static str) -> Result<Self> {
        // The manager checks the object's service; the ref's own claim is not trusted.
        let generation = client.retain_object(object.id, service)?;
        Ok(ObjectHandle {
            client: client.clone(),
            id: AtomicU64::new(object.id),
            service,
            reopen: None,
            counted: Some(generation),
            timeout: None,
        })
    }

    /// A serde value naming this object, to send to another process.
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            id: self.id(),
            service: self.service.to_string(),
        }
    }

    /// The object's id in its manager.
    pub fn id(&self) -> u64 {
        self.id.load(Ordering::Acquire)
    }

    /// The client this handle calls through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The request for `method` of this object.
    fn method<'a>(&self, method: &'a str) -> Op<'a> {
        Op::Method {
            object: self.id(),
            method,
        }
    }

    /// Another handle on the same object whose calls time out after `timeout` (instead of the
    /// client's [`call_timeout`](crate::ClientBuilder::call_timeout)), with
    /// [`Error::Timeout`]`(`[`Phase::Call`](crate::Phase::Call)`)`.
    pub fn with_timeout(&self, timeout: Duration) -> ObjectHandle {
        let mut handle = self.clone();
        handle.timeout = Some(timeout);
        handle
    }

    /// The timeout of this handle's calls.
    pub(crate) fn call_timeout(&self) -> Option<Duration> {
        self.timeout.or_else(|| self.client.call_timeout())
    }

    /// Calls `method` with the argument tuple `args` and decodes its result as `R`.
    ///
    /// A handle from an earlier run of the manager fails with a remote error of kind
    /// `StaleObject`; handles opened by name reopen the name instead and call again.
    pub fn call<R: DeserializeOwned, A: Serialize>(&self, method: &str, args: &A) -> Result<R> {
        let timeout = self.call_timeout();
        match self.client.request(self.method(method), args, timeout) {
            Err(e) if is_stale(&e) && self.reopen()? => {
                self.client.request(self.method(method), args, timeout)
            }
            other => other,
        }
    }

    /// Calls `method` over a given connection (see `Client::request_on`).
    pub(crate) fn call_on<R: DeserializeOwned, A: Serialize>(
        &self,
        connection: &mut Option<crate::client::Connection>,
        method: &str,
        args: &A,
        timeout: Option<std::time::Duration>,
    ) -> Result<R> {
        self.retrying_stale(method, |op| {
            self.client.request_on(connection, op, args, timeout)
        })
    }

    /// Queues a call of `method` on the client's pipeline connection and returns its
    /// pending reply (see [`Client::send`]). A stale handle's pipelined call fails with
    /// `StaleObject` and is not retried; the next `call` reopens.
    pub fn send<R: DeserializeOwned, A: Serialize>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<Pending<R>> {
        self.client.send_op(self.method(method), args)
    }

    /// [`ObjectHandle::send`] whose reply `W` becomes `R` by `finish` (built-in objects'
    /// encoded values, decoded after the wait).
    pub(crate) fn send_finished<R, W: DeserializeOwned, A: Serialize>(
        &self,
        method: &str,
        args: &A,
        finish: fn(W) -> Result<R>,
    ) -> Result<Pending<R, W>> {
        self.client
            .send_op_finished(self.method(method), args, finish)
    }
}

impl Clone for ObjectHandle {
    fn clone(&self) -> Self {
        let counted = self
            .counted
            .filter(|&generation| self.client.share_object(self.id(), generation));
        ObjectHandle {
            client: self.client.clone(),
            id: AtomicU64::new(self.id()),
            service: self.service,
            reopen: self.reopen.clone(),
            counted,
            timeout: self.timeout,
        }
    }
}

impl Drop for ObjectHandle {
    fn drop(&mut self) {
        if let Some(generation) = self.counted {
            self.client.release_object(self.id(), generation);
        }
    }
}

impl std::fmt::Debug for ObjectHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectHandle")
            .field("service", &self.service)
            .field("id", &self.id())
            .field("manager", self.client.address())
            .finish()
    }
}

/// What a typed stub calls through: a manager's object ([`ObjectHandle`]), or (inside the
/// crate) another home of a built-in kind. Generated stubs are generic over it, with
/// `ObjectHandle` as the default; applications never name it.
#[doc(hidden)]
pub trait Calls {
    /// Calls `method` and waits for its result.
    fn call<R: DeserializeOwned, A: Serialize>(&self, method: &str, args: &A) -> Result<R>;
    /// Queues a call to `method` and returns its pending reply.
    fn send<R: DeserializeOwned, A: Serialize>(&self, method: &str, args: &A)
    -> Result<Pending<R>>;
}

impl Calls for ObjectHandle {
    #[inline]
    fn call<R: DeserializeOwned, A: Serialize>(&self, method: &str, args: &A) -> Result<R> {
        ObjectHandle::call(self, method, args)
    }

    fn send<R: DeserializeOwned, A: Serialize>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<Pending<R>> {
        ObjectHandle::send(self, method, args)
    }
}

impl<T: Calls + ?Sized> Calls for &T {
    #[inline]
    fn call<R: DeserializeOwned, A: Serialize>(&self, method: &str, args: &A) -> Result<R> {
        T::call(self, method, args)
    }

    fn send<R: DeserializeOwned, A: Serialize>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<Pending<R>> {
        T::send(self, method, args)
    }
}
