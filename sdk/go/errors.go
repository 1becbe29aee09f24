package approvald

import (
	"errors"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	approvalv1 "github.com/approvald/approvald/sdk/go/approval/v1"
)

// reason is the google.rpc.ErrorInfo reason of r: its name without the
// ERROR_REASON_ prefix (the proto's rule).
func reason(r approvalv1.ErrorReason) string {
	return strings.TrimPrefix(r.String(), "ERROR_REASON_")
}

// metadataKey is the google.rpc.ErrorInfo metadata key of k: its name without
// the ERROR_METADATA_KEY_ prefix, in lowercase (the proto's rule).
func metadataKey(k approvalv1.ErrorMetadataKey) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "ERROR_METADATA_KEY_"))
}

var (
	reasonAlreadyFinal          = reason(approvalv1.ErrorReason_ERROR_REASON_ALREADY_FINAL)
	reasonAlreadyVoted          = reason(approvalv1.ErrorReason_ERROR_REASON_ALREADY_VOTED)
	reasonContextDigestMismatch = reason(approvalv1.ErrorReason_ERROR_REASON_CONTEXT_DIGEST_MISMATCH)
	keyStatus                   = metadataKey(approvalv1.ErrorMetadataKey_ERROR_METADATA_KEY_STATUS)
	keyDecidedBy                = metadataKey(approvalv1.ErrorMetadataKey_ERROR_METADATA_KEY_DECIDED_BY)
	keyReason                   = metadataKey(approvalv1.ErrorMetadataKey_ERROR_METADATA_KEY_REASON)
	keyDecidedAt                = metadataKey(approvalv1.ErrorMetadataKey_ERROR_METADATA_KEY_DECIDED_AT)
	keyVoter                    = metadataKey(approvalv1.ErrorMetadataKey_ERROR_METADATA_KEY_VOTER)
	keyDecision                 = metadataKey(approvalv1.ErrorMetadataKey_ERROR_METADATA_KEY_DECISION)
	keyContextDigest            = metadataKey(approvalv1.ErrorMetadataKey_ERROR_METADATA_KEY_CONTEXT_DIGEST)
	keyExpectedContextDigest    = metadataKey(approvalv1.ErrorMetadataKey_ERROR_METADATA_KEY_EXPECTED_CONTEXT_DIGEST)
)

// AlreadyDecidedError: the approval was already final with another outcome
// (FAILED_PRECONDITION, reason ALREADY_FINAL). The first decision wins.
type AlreadyDecidedError struct {
	// Status is how it ended ("approved", "rejected", "expired", "cancelled").
	Status    string
	DecidedBy string
	Reason    string
	DecidedAt string
	err       error
}

func (e *AlreadyDecidedError) Error() string { return e.err.Error() }

// GRPCStatus keeps status.Code working on the error.
func (e *AlreadyDecidedError) GRPCStatus() *status.Status { s, _ := status.FromError(e.err); return s }

// AlreadyVotedError: this voter already voted otherwise on the pending
// approval (FAILED_PRECONDITION, reason ALREADY_VOTED): a vote cannot be
// changed or cast twice; nothing changed.
type AlreadyVotedError struct {
	Voter string
	// Decision is the vote already cast: "approve" or "reject".
	Decision string
	err      error
}

func (e *AlreadyVotedError) Error() string { return e.err.Error() }

// GRPCStatus keeps status.Code working on the error.
func (e *AlreadyVotedError) GRPCStatus() *status.Status { s, _ := status.FromError(e.err); return s }

// ContextChangedError: Respond's ExpectContextDigest is not the approval's
// context digest (FAILED_PRECONDITION, reason CONTEXT_DIGEST_MISMATCH);
// nothing changed.
type ContextChangedError struct {
	// ContextDigest is the approval's; ExpectedContextDigest the one sent.
	ContextDigest         string
	ExpectedContextDigest string
	err                   error
}

func (e *ContextChangedError) Error() string { return e.err.Error() }

// GRPCStatus keeps status.Code working on the error.
func (e *ContextChangedError) GRPCStatus() *status.Status { s, _ := status.FromError(e.err); return s }

// InvalidArgumentError: the request was refused; Field names the bad field.
type InvalidArgumentError struct {
	Field string
	err   error
}

func (e *InvalidArgumentError) Error() string { return e.err.Error() }

// GRPCStatus keeps status.Code working on the error.
func (e *InvalidArgumentError) GRPCStatus() *status.Status { s, _ := status.FromError(e.err); return s }

// ErrUnauthenticated is matched (errors.Is) by UNAUTHENTICATED errors: the
// service has authentication on and the call had no valid credentials
// (WithToken, or a client certificate with WithTLS).
var ErrUnauthenticated = errors.New("approvald: unauthenticated")

// ErrPermissionDenied is matched (errors.Is) by PERMISSION_DENIED errors: the
// caller's roles do not allow this, or it is deciding its own request.
var ErrPermissionDenied = errors.New("approvald: permission denied")

// sentinelError is a gRPC error that errors.Is matches with one of the
// sentinels above.
type sentinelError struct {
	err      error
	sentinel error
}

func (e *sentinelError) Error() string              { return e.err.Error() }
func (e *sentinelError) Is(target error) bool       { return target == e.sentinel }
func (e *sentinelError) GRPCStatus() *status.Status { s, _ := status.FromError(e.err); return s }
func (e *sentinelError) Unwrap() error              { return e.err }

// convert turns gRPC errors with google.rpc details into the typed errors
// above; other errors pass through (status.Code still works on them).
func convert(err error) error {
	if err == nil {
		return nil
	}
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch s.Code() {
	case codes.FailedPrecondition:
		for _, d := range s.Details() {
			info, ok := d.(*errdetails.ErrorInfo)
			if !ok {
				continue
			}
			m := info.GetMetadata()
			switch info.GetReason() {
			case reasonAlreadyFinal:
				return &AlreadyDecidedError{Status: m[keyStatus], DecidedBy: m[keyDecidedBy],
					Reason: m[keyReason], DecidedAt: m[keyDecidedAt], err: err}
			case reasonAlreadyVoted:
				return &AlreadyVotedError{Voter: m[keyVoter], Decision: m[keyDecision], err: err}
			case reasonContextDigestMismatch:
				return &ContextChangedError{ContextDigest: m[keyContextDigest],
					ExpectedContextDigest: m[keyExpectedContextDigest], err: err}
			}
		}
	case codes.InvalidArgument:
		e := &InvalidArgumentError{err: err}
		for _, d := range s.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
				e.Field = br.GetFieldViolations()[0].GetField()
			}
		}
		return e
	case codes.NotFound:
		return &sentinelError{err: err, sentinel: ErrUnknownApproval}
	case codes.Unauthenticated:
		return &sentinelError{err: err, sentinel: ErrUnauthenticated}
	case codes.PermissionDenied:
		return &sentinelError{err: err, sentinel: ErrPermissionDenied}
	}
	return err
}
