//! The aggregate types an application registers: what `rebuild`, `verify` and `inspect` need
//! its code for (replaying events into a state), behind one object-safe interface.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use snap_core::{Aggregate, AggregateId, Decider, DynBackend};
use snap_repo::{
    AggregateRepository, BuildError, DeciderRepository, DeciderRepositoryBuilder, Rebuilt,
    RepositoryBuilder, RepositoryError, SnapshotCheck,
};

/// One registered type: builds its repository on an open database.
pub(crate) trait Kind: Send + Sync {
    /// The aggregate type name stored with events and snapshots.
    fn type_name(&self) -> &'static str;
    /// "aggregate" or "decider".
    fn kind(&self) -> &'static str;
    /// The type's repository on `backend`, configured as the application configured it.
    fn open(&self, backend: Arc<DynBackend>) -> Result<Arc<dyn Checks>, BuildError>;
}

/// The work done on one aggregate of a registered type.
#[async_trait]
pub(crate) trait Checks: Send + Sync {
    /// A fresh snapshot from a full replay.
    async fn rebuild(&self, id: AggregateId) -> Result<Rebuilt, RepositoryError>;
    /// The stored snapshot against a replay to its version.
    async fn verify(&self, id: AggregateId) -> Result<SnapshotCheck, RepositoryError>;
}

#[async_trait]
impl<A: Aggregate> Checks for AggregateRepository<A> {
    async fn rebuild(&self, id: AggregateId) -> Result<Rebuilt, RepositoryError> {
        self.rebuild_snapshot(id).await
    }

    async fn verify(&self, id: AggregateId) -> Result<SnapshotCheck, RepositoryError> {
        self.verify_snapshot(id).await
    }
}

type Configure<B> = Box<dyn Fn(B) -> B + Send + Sync>;

/// An aggregate type and how its repository is configured (codec, migrations).
pub(crate) struct AggregateKind<A: Aggregate> {
    pub(crate) configure: Configure<RepositoryBuilder<A>>,
    pub(crate) marker: PhantomData<fn() -> A>,
}

impl<A: Aggregate> Kind for AggregateKind<A> {
    fn type_name(&self) -> &'static str {
        A::TYPE
    }

    fn kind(&self) -> &'static str {
        "aggregate"
    }

    fn open(&self, backend: Arc<DynBackend>) -> Result<Arc<dyn Checks>, BuildError> {
        let builder = (self.configure)(AggregateRepository::<A>::builder(backend));
        Ok(Arc::new(builder.build()?))
    }
}

/// A decider and how its repository is configured.
pub(crate) struct DeciderKind<D: Decider> {
    pub(crate) configure: Configure<DeciderRepositoryBuilder<D>>,
    pub(crate) marker: PhantomData<fn() -> D>,
}

impl<D: Decider> Kind for DeciderKind<D> {
    fn type_name(&self) -> &'static str {
        D::TYPE
    }

    fn kind(&self) -> &'static str {
        "decider"
    }

    fn open(&self, backend: Arc<DynBackend>) -> Result<Arc<dyn Checks>, BuildError> {
        let builder = (self.configure)(DeciderRepository::<D>::builder(backend));
        Ok(Arc::new(builder.build()?.aggregates().clone()))
    }
}

impl fmt::Debug for dyn Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.type_name())
    }
}
