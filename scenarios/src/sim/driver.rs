//! The admin host: the runner's hands inside the simulation. The runner hands it a job
//! (a future: an admin command, a Vault admin call) and steps the simulation until the
//! job's answer arrives or its bound passes.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::mpsc;

type Job = Pin<Box<dyn Future<Output = ()>>>;

pub struct Driver {
    jobs: mpsc::UnboundedSender<Job>,
}

/// The job did not finish within its bound.
#[derive(Debug)]
pub struct Stuck;

impl Driver {
    /// Registers the admin host; it runs jobs one at a time, in order.
    pub fn install(sim: &mut turmoil::Sim<'_>) -> Driver {
        let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
        sim.client("admin", async move {
            while let Some(job) = rx.recv().await {
                job.await;
            }
            Ok(())
        });
        Driver { jobs }
    }

    /// Runs `job` on the admin host. `step` advances the simulation by one tick and
    /// returns the simulated time; the job gets `bound` of it.
    pub fn run<T: 'static>(
        &self,
        step: &mut dyn FnMut() -> Duration,
        now: Duration,
        bound: Duration,
        job: impl Future<Output = T> + 'static,
    ) -> Result<T, Stuck> {
        let slot: Rc<RefCell<Option<T>>> = Rc::new(RefCell::new(None));
        let out = slot.clone();
        let wrapped: Job = Box::pin(async move {
            let value = job.await;
            *out.borrow_mut() = Some(value);
        });
        if self.jobs.send(wrapped).is_err() {
            return Err(Stuck);
        }
        let deadline = now + bound;
        loop {
            if let Some(value) = slot.borrow_mut().take() {
                return Ok(value);
            }
            if step() > deadline {
                return Err(Stuck);
            }
        }
    }
}
