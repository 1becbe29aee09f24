package approvald

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	approvalv1 "github.com/approvald/approvald/sdk/go/approval/v1"
)

// DefaultTarget is where approvald listens by default.
const DefaultTarget = "127.0.0.1:50051"

// Client is a connection to approvald (any replica). It is safe for
// concurrent use.
type Client struct {
	conn *grpc.ClientConn
	api  approvalv1.ApprovalServiceClient
	// AgentID is sent as agent_id with every new approval.
	AgentID string
	// ReconnectTimeout bounds how long a blocked call or a watch keeps trying
	// to reach the service after losing its connection (default one minute).
	ReconnectTimeout time.Duration
}

// Option configures Dial.
type Option func(*dialConfig)

type dialConfig struct {
	agentID     string
	token       string
	transport   credentials.TransportCredentials
	err         error
	dialOptions []grpc.DialOption
}

// WithAgentID names the agent that asks for approvals.
func WithAgentID(id string) Option { return func(c *dialConfig) { c.agentID = id } }

// WithDialOptions adds gRPC dial options. Transport credentials given here
// (grpc.WithTransportCredentials) replace the default plaintext connection
// and WithTLS.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *dialConfig) { c.dialOptions = append(c.dialOptions, opts...) }
}

// Dial connects to approvald at target: "host:port", or several replicas as
// "ipv4:10.0.0.1:50051,10.0.0.2:50051" (a lost call re-attaches to any).
// The connection is plaintext unless WithTLS (or transport credentials in
// WithDialOptions) says otherwise; WithToken authenticates every call.
func Dial(target string, opts ...Option) (*Client, error) {
	cfg := dialConfig{}
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	transport := cfg.transport
	if transport == nil {
		transport = insecure.NewCredentials()
	}
	dialOptions := []grpc.DialOption{grpc.WithTransportCredentials(transport)}
	if cfg.token != "" {
		dialOptions = append(dialOptions, grpc.WithPerRPCCredentials(bearerToken(cfg.token)))
	}
	if strings.Contains(target, ",") {
		// A list of addresses is no valid :authority.
		dialOptions = append(dialOptions, grpc.WithAuthority("approvald"))
	}
	conn, err := grpc.NewClient(target, append(dialOptions, cfg.dialOptions...)...)
	if err != nil {
		return nil, err
	}
	return &Client{
		conn:             conn,
		api:              approvalv1.NewApprovalServiceClient(conn),
		AgentID:          cfg.agentID,
		ReconnectTimeout: time.Minute,
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// API is the generated gRPC client, for what this package does not wrap.
func (c *Client) API() approvalv1.ApprovalServiceClient { return c.api }

// Request is a new approval.
type Request struct {
	// ApprovalType is what kind of action this gates, e.g. "deploy:production".
	ApprovalType string
	// Context is shown to the human (JSON-like values).
	Context map[string]any
	Labels  map[string]string
	// Timeout is how long the approval stays open (0: the server's default,
	// 300 s). At its end the approval is EXPIRED and not approved.
	Timeout time.Duration
	// IdempotencyKey attaches calls to one approval. RequestApproval and
	// CreateApproval make one up when it is empty (RequestApproval re-attaches
	// by it after a lost connection).
	IdempotencyKey string
}

// Decision is a final approval. Its Approval carries what its policy said
// (GetRequiredApprovals, GetOnTimeout, GetPolicy) and every vote (GetVotes:
// voter, decision, reason, time).
type Decision struct {
	Approval *approvalv1.Approval
	// Approved is whether the gate proceeds, as the service says: its voters
	// approved it (APPROVED), or it EXPIRED under a policy whose on_timeout
	// is "approve" (then the approval's reason names the policy).
	Approved bool
}

// RequestApproval creates an approval and blocks until it is final, or until
// ctx ends: then it returns an error matching ctx's (errors.Is with
// context.DeadlineExceeded or context.Canceled) and the approval stays pending; call again with the same
// IdempotencyKey to re-attach. A lost connection or a replica shutting down
// re-attaches by itself.
func (c *Client) RequestApproval(ctx context.Context, r Request) (*Decision, error) {
	if r.IdempotencyKey == "" {
		r.IdempotencyKey = newKey()
	}
	message, err := r.proto(c.AgentID)
	if err != nil {
		return nil, err
	}
	var response *approvalv1.RequestApprovalResponse
	err = c.reattaching(ctx, func() (err error) {
		response, err = c.api.RequestApproval(ctx, message)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Decision{Approval: response.GetApproval(), Approved: response.GetApproved()}, nil
}

// CreateApproval creates an approval (or finds the one with the same
// IdempotencyKey) and returns at once. An empty IdempotencyKey is made up,
// so that a retry after an ambiguous failure (say UNAVAILABLE after the write
// landed) returns the same approval instead of making a second.
func (c *Client) CreateApproval(ctx context.Context, r Request) (*approvalv1.Approval, error) {
	if r.IdempotencyKey == "" {
		r.IdempotencyKey = newKey()
	}
	m, err := r.proto(c.AgentID)
	if err != nil {
		return nil, err
	}
	response, err := c.api.CreateApproval(ctx, &approvalv1.CreateApprovalRequest{
		ApprovalType: m.ApprovalType, AgentId: m.AgentId, Context: m.Context,
		Labels: m.Labels, Timeout: m.Timeout, IdempotencyKey: m.IdempotencyKey,
	})
	return response.GetApproval(), convert(err)
}

// AwaitApproval blocks until the approval is final (at once if it already is)
// or ctx ends, re-attaching after a lost connection.
func (c *Client) AwaitApproval(ctx context.Context, id string) (*Decision, error) {
	var response *approvalv1.AwaitApprovalResponse
	err := c.reattaching(ctx, func() (err error) {
		response, err = c.api.AwaitApproval(ctx, &approvalv1.AwaitApprovalRequest{Id: id})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Decision{Approval: response.GetApproval(), Approved: response.GetApproved()}, nil
}

// RespondOption refines Respond.
type RespondOption func(*approvalv1.RespondRequest)

// ExpectContextDigest makes Respond count the vote only if the approval's
// context is the one seen: digest is its GetContextDigest() as shown to the
// human. Otherwise Respond fails with a *ContextChangedError and nothing
// changes.
func ExpectContextDigest(digest string) RespondOption {
	return func(r *approvalv1.RespondRequest) { r.ExpectedContextDigest = digest }
}

// Respond records a human vote. With one required approval (the default)
// the first decision wins: a conflicting one fails with an
// *AlreadyDecidedError naming the winner; an identical retry succeeds. Under
// a policy needing several approvals the approval stays PENDING (its votes
// growing) until GetRequiredApprovals() distinct voters approved; one reject
// ends it. A voter's changed or second vote fails with an *AlreadyVotedError.
func (c *Client) Respond(ctx context.Context, id string, approve bool, responder, reason string, opts ...RespondOption) (*approvalv1.Approval, error) {
	decision := approvalv1.Decision_DECISION_REJECT
	if approve {
		decision = approvalv1.Decision_DECISION_APPROVE
	}
	request := &approvalv1.RespondRequest{
		Id: id, Decision: decision, Responder: responder, Reason: reason,
	}
	for _, opt := range opts {
		opt(request)
	}
	response, err := c.api.Respond(ctx, request)
	return response.GetApproval(), convert(err)
}

// GetApproval returns one approval by id, final or not.
func (c *Client) GetApproval(ctx context.Context, id string) (*approvalv1.Approval, error) {
	response, err := c.api.GetApproval(ctx, &approvalv1.GetApprovalRequest{Id: id})
	return response.GetApproval(), convert(err)
}

// CancelApproval withdraws a pending approval; its waiter returns CANCELLED.
func (c *Client) CancelApproval(ctx context.Context, id, reason string) (*approvalv1.Approval, error) {
	response, err := c.api.CancelApproval(ctx, &approvalv1.CancelApprovalRequest{Id: id, Reason: reason})
	return response.GetApproval(), convert(err)
}

// ListApprovals yields every approval matching the filter, newest first,
// fetching page after page (filter.PageToken is ignored).
func (c *Client) ListApprovals(ctx context.Context, filter *approvalv1.ListApprovalsRequest) iter.Seq2[*approvalv1.Approval, error] {
	return func(yield func(*approvalv1.Approval, error) bool) {
		page := &approvalv1.ListApprovalsRequest{
			Statuses: filter.GetStatuses(), ApprovalTypes: filter.GetApprovalTypes(),
			AgentId: filter.GetAgentId(), Labels: filter.GetLabels(), PageSize: filter.GetPageSize(),
		}
		for {
			response, err := c.api.ListApprovals(ctx, page)
			if err != nil {
				yield(nil, convert(err))
				return
			}
			for _, a := range response.GetApprovals() {
				if !yield(a, nil) {
					return
				}
			}
			if response.GetNextPageToken() == "" {
				return
			}
			page.PageToken = response.GetNextPageToken()
		}
	}
}

func (r Request) proto(agentID string) (*approvalv1.RequestApprovalRequest, error) {
	m := &approvalv1.RequestApprovalRequest{
		ApprovalType:   r.ApprovalType,
		AgentId:        agentID,
		Labels:         r.Labels,
		IdempotencyKey: r.IdempotencyKey,
	}
	if r.Context != nil {
		s, err := structpb.NewStruct(r.Context)
		if err != nil {
			return nil, fmt.Errorf("approvald: context is not JSON-like: %w", err)
		}
		m.Context = s
	}
	if r.Timeout != 0 {
		m.Timeout = durationpb.New(r.Timeout)
	}
	return m, nil
}

// reattaching runs a blocking call until it succeeds, fails for another
// reason than a lost connection, or ctx ends. After UNAVAILABLE (network
// trouble, or a replica shutting down) it waits for the connection to come
// back, to any replica, and repeats the call, which re-attaches by
// idempotency key or id.
func (c *Client) reattaching(ctx context.Context, call func() error) error {
	budget := reconnectBudget{timeout: c.ReconnectTimeout}
	for {
		started := time.Now()
		err := call()
		switch {
		case err == nil:
			return nil
		case status.Code(err) == codes.DeadlineExceeded:
			// The service may notice the deadline a moment before ctx does.
			return fmt.Errorf("approvald: the wait ended before a decision; the approval stays pending: %w: %w",
				context.DeadlineExceeded, err)
		case ctx.Err() != nil:
			return ctx.Err()
		case status.Code(err) != codes.Unavailable:
			return convert(err)
		}
		// A call that ran a while had reached the service: a fresh loss.
		budget.lost(time.Since(started) >= time.Second)
		if err := c.waitUntilConnected(ctx, &budget, err); err != nil {
			return err
		}
	}
}

// waitUntilConnected pauses (growing pauses), then waits for the channel to
// be READY again, within the reconnect budget.
func (c *Client) waitUntilConnected(ctx context.Context, budget *reconnectBudget, cause error) error {
	wait, cancel := context.WithDeadline(ctx, budget.ends)
	defer cancel()
	select {
	case <-time.After(budget.nextPause()):
	case <-wait.Done():
	}
	for {
		state := c.conn.GetState()
		if state == connectivity.Ready {
			return nil
		}
		c.conn.Connect()
		if !c.conn.WaitForStateChange(wait, state) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return convert(fmt.Errorf("no connection to approvald within %s: %w", c.ReconnectTimeout, cause))
		}
	}
}

type reconnectBudget struct {
	timeout time.Duration
	ends    time.Time
	pause   time.Duration
}

func (b *reconnectBudget) lost(fresh bool) {
	if fresh || b.ends.IsZero() {
		b.ends = time.Now().Add(b.timeout)
		b.pause = 100 * time.Millisecond
	}
}

func (b *reconnectBudget) nextPause() time.Duration {
	p := b.pause
	b.pause = min(2*b.pause, 2*time.Second)
	return p
}

func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ErrUnknownApproval is matched (errors.Is) by NOT_FOUND errors.
var ErrUnknownApproval = errors.New("approvald: unknown approval")
