//! Host side of the Spin interfaces the edge component imports:
//! `spin:key-value/key-value@3.0.0` (over [`KvBackend`]) and
//! `spin:variables/variables@3.0.0` (from `--var name=value`).

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::{Accessor, HasData, Resource, ResourceTable};

use crate::kv::KvBackend;

mod generated {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "edge:host/spin-imports",
        imports: { default: trappable },
        with: {
            "spin:key-value/key-value.store": super::KvStore,
        },
    });
}

pub use generated::spin::key_value::key_value;
pub use generated::spin::variables::variables;

/// An open key-value store as the guest holds it: Spin labels stores; this host
/// has exactly one, `default`.
pub struct KvStore;

/// What every instance shares: variables and the key-value backend.
pub struct SpinShared {
    pub variables: HashMap<String, String>,
    pub kv: KvBackend,
}

/// The slice of store data the Spin host functions see.
pub struct SpinView<'a> {
    pub table: &'a mut ResourceTable,
    pub shared: &'a Arc<SpinShared>,
}

/// Marker tying the generated traits to [`SpinView`].
pub struct Spin;

impl HasData for Spin {
    type Data<'a> = SpinView<'a>;
}

fn shared<T>(accessor: &Accessor<T, Spin>) -> Arc<SpinShared> {
    accessor.with(|mut access| access.get().shared.clone())
}

fn kv_error(error: crate::kv::KvError) -> key_value::Error {
    key_value::Error::Other(error_chain(&error))
}

/// An error and its sources on one line, for errors that cross into the guest.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl key_value::Host for SpinView<'_> {}

impl key_value::HostStore for SpinView<'_> {
    fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl<T> key_value::HostStoreWithStore<T> for Spin {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<KvStore>, key_value::Error>> {
        if label != "default" {
            return Ok(Err(key_value::Error::NoSuchStore));
        }
        accessor.with(|mut access| Ok(Ok(access.get().table.push(KvStore)?)))
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        _store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, key_value::Error>> {
        Ok(shared(accessor).kv.get(&key).await.map_err(kv_error))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        _store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        Ok(shared(accessor).kv.set(&key, value).await.map_err(kv_error))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        _store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        Ok(shared(accessor).kv.delete(&key).await.map_err(kv_error))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        _store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, key_value::Error>> {
        Ok(shared(accessor).kv.exists(&key).await.map_err(kv_error))
    }

    async fn get_keys(
        _accessor: &Accessor<T, Self>,
        _store: Resource<KvStore>,
    ) -> wasmtime::Result<(
        wasmtime::component::StreamReader<String>,
        wasmtime::component::FutureReader<Result<(), key_value::Error>>,
    )> {
        // Listing a shared cache is never needed by the edge (it invalidates by
        // generation, see edge-core's key module), so this host does not offer it.
        Err(wasmtime::format_err!(
            "edge-host does not implement spin:key-value get-keys"
        ))
    }
}

impl variables::Host for SpinView<'_> {}

impl<T> variables::HostWithStore<T> for Spin {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, variables::Error>> {
        let value = shared(accessor).variables.get(&name).cloned();
        Ok(value.ok_or(variables::Error::Undefined(name)))
    }
}

/// Adds both interfaces to a linker whose store data can produce a [`SpinView`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> SpinView<'_>,
) -> wasmtime::Result<()> {
    key_value::add_to_linker::<T, Spin>(linker, view)?;
    variables::add_to_linker::<T, Spin>(linker, view)?;
    Ok(())
}
