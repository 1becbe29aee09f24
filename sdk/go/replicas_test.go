package approvald_test

// Replicas that go away: a waiting call and a watch survive a replica
// stopped with SIGTERM (the next replica on the address finishes them), and
// a cursor trimmed out of the event log gives Reset and a fresh snapshot.
// The suite (scripts/suites/42-sdk-go.sh, via sdk/tests/cluster.sh) exports
// APPROVALD_BIN, APPROVALD_REDIS_URL and APPROVALD_REDIS_PREFIX so that
// tests can start replicas of their own on the same Redis.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	approvald "github.com/approvald/approvald/sdk/go"
	approvalv1 "github.com/approvald/approvald/sdk/go/approval/v1"
)

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run scripts/suites/42-sdk-go.sh", name)
	}
	return v
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// replica is one approvald process of the suite's Redis.
type replica struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startReplica starts approvald on addr, under the Redis prefix, and waits
// until its health says SERVING.
func startReplica(t *testing.T, addr, prefix string, extra ...string) *replica {
	t.Helper()
	args := append([]string{
		"--listen", addr, "--metrics-listen", freeAddr(t),
		"--redis-url", mustEnv(t, "APPROVALD_REDIS_URL"), "--redis-prefix", prefix,
		"--shutdown-grace", "2s",
	}, extra...)
	r := &replica{cmd: exec.Command(mustEnv(t, "APPROVALD_BIN"), args...), done: make(chan struct{})}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() { r.cmd.Process.Kill(); <-r.done })
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		reply, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "approval.v1.ApprovalService"})
		cancel()
		if err == nil && reply.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return r
		}
	}
	t.Fatalf("approvald at %s did not become SERVING", addr)
	return nil
}

// shutDown sends SIGTERM, as Kubernetes does, and waits for the exit.
func (r *replica) shutDown(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("approvald did not exit within 30 s of SIGTERM")
	}
}

// events runs a watch in the background; the test reads its events with
// next, which fails the test when none comes within the bound.
func events(t *testing.T, c *approvald.Client, request *approvalv1.WatchPendingRequest) (next func() approvald.Event, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan approvald.Event, 1024)
	go func() {
		defer close(out)
		for event, err := range c.WatchPending(ctx, request) {
			if err != nil {
				t.Errorf("watch: %v", err)
				return
			}
			out <- event
		}
	}()
	t.Cleanup(cancel)
	return func() approvald.Event {
		t.Helper()
		select {
		case e, ok := <-out:
			if !ok {
				t.Fatal("the watch ended")
			}
			return e
		case <-time.After(30 * time.Second):
			t.Fatal("no watch event within 30 s")
		}
		return approvald.Event{}
	}, cancel
}

func TestARequestWaitingOnAStoppedReplicaFinishesOnTheNextOne(t *testing.T) {
	addr, k := freeAddr(t), kind(t)
	first := startReplica(t, addr, mustEnv(t, "APPROVALD_REDIS_PREFIX"))
	agent, human := dial(t, addr, "go-agent"), dial(t, addrA, "go-human")
	done := make(chan *approvald.Decision, 1)
	go func() {
		d, err := agent.RequestApproval(testContext(t), approvald.Request{ApprovalType: k, Timeout: 2 * time.Minute})
		if err != nil {
			t.Error(err)
		}
		done <- d
	}()
	pending := pendingOf(t, human, k)
	first.shutDown(t) // its waiter is told UNAVAILABLE and re-attaches
	startReplica(t, addr, mustEnv(t, "APPROVALD_REDIS_PREFIX"))
	if _, err := human.Respond(testContext(t), pending.GetId(), true, "alice", "after the restart"); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-done:
		if d == nil || !d.Approved || d.Approval.GetId() != pending.GetId() {
			t.Fatalf("decision = %+v, want approval %s approved", d, pending.GetId())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the waiting call never finished on the next replica")
	}
}

func TestAWatchResumesByItselfAfterItsReplicaStopsWithNoGapAndNoDuplicate(t *testing.T) {
	addr, k := freeAddr(t), kind(t)
	first := startReplica(t, addr, mustEnv(t, "APPROVALD_REDIS_PREFIX"))
	watcher, human := dial(t, addr, "go-watcher"), dial(t, addrA, "go-human")
	ctx := testContext(t)
	before, err := human.CreateApproval(ctx, approvald.Request{ApprovalType: k})
	if err != nil {
		t.Fatal(err)
	}
	next, _ := events(t, watcher, &approvalv1.WatchPendingRequest{ApprovalTypes: []string{k}})
	if e := next(); e.Kind != approvald.Added || e.Approval.GetId() != before.GetId() {
		t.Fatalf("snapshot = %+v", e)
	}
	if e := next(); e.Kind != approvald.Synced {
		t.Fatalf("after the snapshot = %+v", e)
	}
	live, err := human.CreateApproval(ctx, approvald.Request{ApprovalType: k})
	if err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Kind != approvald.Added || e.Approval.GetId() != live.GetId() {
		t.Fatalf("live = %+v", e)
	}

	first.shutDown(t)
	// While the watcher's replica is gone: each must arrive exactly once.
	if _, err := human.Respond(ctx, before.GetId(), true, "alice", ""); err != nil {
		t.Fatal(err)
	}
	second, err := human.CreateApproval(ctx, approvald.Request{ApprovalType: k})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := human.CancelApproval(ctx, live.GetId(), "superseded"); err != nil {
		t.Fatal(err)
	}
	startReplica(t, addr, mustEnv(t, "APPROVALD_REDIS_PREFIX"))

	want := []struct {
		kind approvald.EventKind
		id   string
	}{{approvald.Resolved, before.GetId()}, {approvald.Added, second.GetId()}, {approvald.Resolved, live.GetId()}}
	for i, w := range want {
		e := next()
		if e.Kind != w.kind || e.Approval.GetId() != w.id || e.Cursor == "" {
			t.Fatalf("event %d after the restart = %s %s, want %s %s (no reset, no gap, no duplicate)",
				i, e.Kind, e.Approval.GetId(), w.kind, w.id)
		}
	}
}

func TestACursorTrimmedFromTheEventLogGivesResetAndAFreshSnapshot(t *testing.T) {
	// A store of its own whose event log keeps 3 events.
	addr, k := freeAddr(t), kind(t)
	startReplica(t, addr, fmt.Sprintf("go-trim-%d", time.Now().UnixNano()), "--event-log-cap", "3")
	c := dial(t, addr, "go-trim")
	ctx := testContext(t)
	next, stop := events(t, c, &approvalv1.WatchPendingRequest{ApprovalTypes: []string{k}})
	if e := next(); e.Kind != approvald.Synced {
		t.Fatalf("first event = %+v", e)
	}
	kept, err := c.CreateApproval(ctx, approvald.Request{ApprovalType: k})
	if err != nil {
		t.Fatal(err)
	}
	live := next()
	if live.Kind != approvald.Added || live.Approval.GetId() != kept.GetId() {
		t.Fatalf("live = %+v", live)
	}
	stop()
	// 160 events while nobody watches (Redis trims by nodes of 100 entries).
	for range 80 {
		a, err := c.CreateApproval(ctx, approvald.Request{ApprovalType: k})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CancelApproval(ctx, a.GetId(), "churn"); err != nil {
			t.Fatal(err)
		}
	}
	next, _ = events(t, c, &approvalv1.WatchPendingRequest{ApprovalTypes: []string{k}, Cursor: live.Cursor})
	if e := next(); e.Kind != approvald.Reset {
		t.Fatalf("first event from a trimmed cursor = %+v, want reset", e)
	}
	if e := next(); e.Kind != approvald.Added || e.Approval.GetId() != kept.GetId() {
		t.Fatalf("re-sync = %+v, want the pending approval", e)
	}
	if e := next(); e.Kind != approvald.Synced {
		t.Fatalf("after the re-sync = %+v, want synced", e)
	}
}
