package approvald

import (
	"context"
	"errors"
	"io"
	"iter"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	approvalv1 "github.com/approvald/approvald/sdk/go/approval/v1"
)

// EventKind says what a watch Event means.
type EventKind string

const (
	// Added: a pending approval (from the snapshot, or newly created).
	Added EventKind = "added"
	// Updated: a pending approval changed and is still pending (a vote
	// arrived: see its GetVotes()).
	Updated EventKind = "updated"
	// Resolved: a pending approval became final.
	Resolved EventKind = "resolved"
	// Synced: the snapshot is complete; live events follow.
	Synced EventKind = "synced"
	// Reset: the resume point was lost (aged out of the event log, or the
	// snapshot broke off); a fresh snapshot follows.
	Reset EventKind = "reset"
)

// Event is one WatchPending event.
type Event struct {
	Kind     EventKind
	Approval *approvalv1.Approval
	// Cursor resumes right after this event; empty during the snapshot.
	Cursor string
}

// WatchPending yields every pending approval matching filter (a snapshot,
// with empty cursors), then Synced, then live Added, Updated and Resolved events until
// ctx ends or the loop stops. A lost stream is resumed from the last cursor
// (on any replica: no gap, no duplicate); filter.Cursor starts after an
// earlier event. It yields an error only when it gives up.
func (c *Client) WatchPending(ctx context.Context, filter *approvalv1.WatchPendingRequest) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		request := &approvalv1.WatchPendingRequest{
			ApprovalTypes: filter.GetApprovalTypes(), AgentId: filter.GetAgentId(),
			Labels: filter.GetLabels(), Cursor: filter.GetCursor(),
		}
		budget := reconnectBudget{timeout: c.ReconnectTimeout}
		yieldedWithoutCursor := false
		for {
			streamCtx, cancel := context.WithCancel(ctx)
			stream, err := c.api.WatchPending(streamCtx, request)
			received := false
			for err == nil {
				var response *approvalv1.WatchPendingResponse
				response, err = stream.Recv()
				if err != nil {
					break
				}
				received = true
				event, known := eventOf(response)
				if event.Cursor != "" {
					request.Cursor = event.Cursor
				} else {
					yieldedWithoutCursor = true
				}
				if !known {
					continue // an event kind newer than this package (its cursor is kept)
				}
				if !yield(event, nil) {
					cancel()
					return
				}
			}
			cancel()
			if ctx.Err() != nil {
				return
			}
			code := status.Code(err)
			// io.EOF (the server closed the stream, e.g. shutting down) is a
			// lost stream like UNAVAILABLE.
			lost := code == codes.Unavailable || errors.Is(err, io.EOF)
			switch {
			case code == codes.OutOfRange || lost && request.Cursor == "" && yieldedWithoutCursor:
				request.Cursor = ""
				yieldedWithoutCursor = false
				if !yield(Event{Kind: Reset}, nil) {
					return
				}
				if code == codes.OutOfRange {
					continue
				}
			case !lost:
				yield(Event{}, convert(err))
				return
			}
			budget.lost(received)
			if err := c.waitUntilConnected(ctx, &budget, err); err != nil {
				if ctx.Err() == nil {
					yield(Event{}, err)
				}
				return
			}
		}
	}
}

// eventOf is the Event of a response; false for an event kind this package
// does not know.
func eventOf(r *approvalv1.WatchPendingResponse) (Event, bool) {
	event := Event{Cursor: r.GetCursor()}
	switch e := r.GetEvent().(type) {
	case *approvalv1.WatchPendingResponse_Added:
		event.Kind, event.Approval = Added, e.Added
	case *approvalv1.WatchPendingResponse_Updated:
		event.Kind, event.Approval = Updated, e.Updated
	case *approvalv1.WatchPendingResponse_Resolved:
		event.Kind, event.Approval = Resolved, e.Resolved
	case *approvalv1.WatchPendingResponse_Synced:
		event.Kind = Synced
	default:
		return event, false
	}
	return event, true
}
