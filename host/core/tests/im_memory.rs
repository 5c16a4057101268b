//! Memory of the IM projection per user, conversation participant and message, measured with a
//! counting allocator (its own test binary, so nothing else allocates meanwhile). Prints the
//! figures (`cargo test -p halo-core --test im_memory -- --nocapture`) and checks wide bounds.
//! The allocator wrapper is the only unsafe code: it forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use halo_core::Username;
use halo_core::conversation::{Conversation, Format};
use halo_core::im::{Fact, ImState, Posted, Thread};
use halo_core::message::{Body, Message};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

#[test]
fn bytes_per_user_participant_and_message() {
    const USERS: u64 = 2_000;
    const MESSAGES_PER_CONV: u64 = 50;
    let names: Vec<Username> = (0..USERS).map(|i| Username::parse(&format!("user{i:05}")).expect("valid")).collect();
    let mut s = ImState::default();
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq
    };

    let base = live();
    for n in &names {
        s.number(n);
    }
    let per_user = (live() - base) as f64 / USERS as f64;

    // 1:1 conversations between neighbours: each user in two.
    let base = live();
    for i in 0..USERS {
        let (a, b) = (&names[i as usize], &names[((i + 1) % USERS) as usize]);
        let conv = Conversation::new(i + 1, a, std::slice::from_ref(b), 0, 0).expect("conv");
        s.apply(next(), &Fact::Started { conversation: conv, archived: None });
    }
    let per_participant = (live() - base) as f64 / (2 * USERS) as f64;

    // Messages with keys, each queued for its recipient until acknowledged.
    let base = live();
    let mut id = 1_000_000;
    for i in 0..USERS {
        let (a, b) = (&names[i as usize], &names[((i + 1) % USERS) as usize]);
        for _ in 0..MESSAGES_PER_CONV {
            id += 1;
            let message = Message {
                id,
                at: id,
                from: a.clone(),
                body: Body::Text { text: "hello".into(), format: Format::Plain },
                key: Some(format!("key-{id}")),
                extras: Default::default(),
            };
            let p = Posted {
                thread: Thread::Conversation(i + 1),
                message,
                conversation: None,
                offline: vec![b.clone()],
                live: vec![],
                archived: None,
                outbound: vec![],
            };
            s.apply(next(), &Fact::Posted(Box::new(p)));
        }
    }
    let total = USERS * MESSAGES_PER_CONV;
    let per_message_queued = (live() - base) as f64 / total as f64;
    let base = live();
    for n in &names {
        s.apply(next(), &Fact::Acked { user: n.clone(), upto: u64::MAX });
    }
    let per_message = per_message_queued + (live() - base) as f64 / total as f64;
    println!(
        "IM projection: {per_user:.0} B per user, {per_participant:.0} B per conversation participant, \
         {per_message:.0} B per message with an idempotency key ({per_message_queued:.0} B while queued)"
    );
    assert!(per_user < 1_000.0, "{per_user} B per user");
    assert!(per_participant < 1_000.0, "{per_participant} B per participant");
    assert!(per_message < 200.0, "{per_message} B per message");
}
