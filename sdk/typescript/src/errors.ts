// Errors a program can act on, from the service's gRPC status and its
// google.rpc details (ErrorInfo for an already-final approval, a changed vote
// or a changed context, BadRequest for a bad field). Every error stays a
// ConnectError (`code`, `rawMessage`).
// The ErrorInfo reasons and metadata keys are the proto's ErrorReason and
// ErrorMetadataKey values, spelled as the proto documents.
import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { ErrorMetadataKey, ErrorReason } from "./gen/approval/v1/approval_pb.js";

/** The ErrorInfo reason: the value's name without the prefix (as generated). */
const reasonOf = (r: ErrorReason): string => ErrorReason[r];
/** The ErrorInfo metadata key: the value's name without the prefix, in lowercase. */
const keyOf = (k: ErrorMetadataKey): string => ErrorMetadataKey[k].toLowerCase();

/** The approval was already final with another outcome: the first decision wins. */
export class AlreadyDecidedError extends ConnectError {
  // ConnectError's instanceof (which needs name "ConnectError") would match
  // any ConnectError: use the prototype chain.
  static override [Symbol.hasInstance](v: unknown): boolean {
    return typeof v === "object" && v !== null && Object.prototype.isPrototypeOf.call(AlreadyDecidedError.prototype, v);
  }
  constructor(
    cause: ConnectError,
    /** How it ended: "approved", "rejected", "expired" or "cancelled". */
    readonly status: string,
    readonly decidedBy: string,
    readonly reason: string,
    readonly decidedAt: string,
  ) {
    super(cause.rawMessage, cause.code, cause.metadata, undefined, cause);
    this.details = cause.details;
  }
}

/** `respond` named an expectedContextDigest other than the approval's: nothing changed. */
export class ContextChangedError extends ConnectError {
  static override [Symbol.hasInstance](v: unknown): boolean {
    return typeof v === "object" && v !== null && Object.prototype.isPrototypeOf.call(ContextChangedError.prototype, v);
  }
  constructor(
    cause: ConnectError,
    /** The approval's digest. */
    readonly contextDigest: string,
    readonly expectedContextDigest: string,
  ) {
    super(cause.rawMessage, cause.code, cause.metadata, undefined, cause);
    this.details = cause.details;
  }
}

/** This voter already voted otherwise on the pending approval: a vote cannot be changed or cast twice; nothing changed. */
export class AlreadyVotedError extends ConnectError {
  static override [Symbol.hasInstance](v: unknown): boolean {
    return typeof v === "object" && v !== null && Object.prototype.isPrototypeOf.call(AlreadyVotedError.prototype, v);
  }
  constructor(
    cause: ConnectError,
    readonly voter: string,
    /** The vote already cast: "approve" or "reject". */
    readonly decision: string,
  ) {
    super(cause.rawMessage, cause.code, cause.metadata, undefined, cause);
    this.details = cause.details;
  }
}

/** The request was refused; `field` names the bad field when known. */
export class InvalidArgumentError extends ConnectError {
  static override [Symbol.hasInstance](v: unknown): boolean {
    return typeof v === "object" && v !== null && Object.prototype.isPrototypeOf.call(InvalidArgumentError.prototype, v);
  }
  constructor(cause: ConnectError, readonly field: string | undefined) {
    super(cause.rawMessage, cause.code, cause.metadata, undefined, cause);
    this.details = cause.details;
  }
}

/** The typed error for a failed call (others come back as ConnectError). */
export function convertError(reason: unknown): unknown {
  const error = ConnectError.from(reason);
  if (error.code === Code.FailedPrecondition) {
    const infos = rawDetails(error, "google.rpc.ErrorInfo").map(decodeErrorInfo);
    const info = infos.find((i) => i.reason === reasonOf(ErrorReason.ALREADY_FINAL));
    if (info) {
      const m = (k: ErrorMetadataKey) => info.metadata[keyOf(k)] ?? "";
      return new AlreadyDecidedError(
        error,
        m(ErrorMetadataKey.STATUS),
        m(ErrorMetadataKey.DECIDED_BY),
        m(ErrorMetadataKey.REASON),
        m(ErrorMetadataKey.DECIDED_AT),
      );
    }
    const changed = infos.find((i) => i.reason === reasonOf(ErrorReason.CONTEXT_DIGEST_MISMATCH));
    if (changed) {
      const m = (k: ErrorMetadataKey) => changed.metadata[keyOf(k)] ?? "";
      return new ContextChangedError(error, m(ErrorMetadataKey.CONTEXT_DIGEST), m(ErrorMetadataKey.EXPECTED_CONTEXT_DIGEST));
    }
    const voted = infos.find((i) => i.reason === reasonOf(ErrorReason.ALREADY_VOTED));
    if (voted) {
      const m = (k: ErrorMetadataKey) => voted.metadata[keyOf(k)] ?? "";
      return new AlreadyVotedError(error, m(ErrorMetadataKey.VOTER), m(ErrorMetadataKey.DECISION));
    }
  }
  if (error.code === Code.InvalidArgument) {
    const violation = rawDetails(error, "google.rpc.BadRequest").map(decodeFirstViolationField)[0];
    return new InvalidArgumentError(error, violation);
  }
  return error;
}

function rawDetails(error: ConnectError, typeName: string): Uint8Array[] {
  return error.details.flatMap((d) => (!("desc" in d) && d.type === typeName ? [d.value] : []));
}

// google.rpc.ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; }
// and BadRequest { repeated FieldViolation field_violations = 1 } with
// FieldViolation { string field = 1; ... }, read with protobuf-es's wire
// reader (the google.rpc types are not generated for TypeScript).
function decodeErrorInfo(bytes: Uint8Array): { reason: string; metadata: Record<string, string> } {
  const reader = new BinaryReader(bytes);
  const result = { reason: "", metadata: {} as Record<string, string> };
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) {
      result.reason = reader.string();
    } else if (field === 3 && wireType === WireType.LengthDelimited) {
      const entry = new BinaryReader(reader.bytes());
      let key = "";
      let value = "";
      while (entry.pos < entry.len) {
        const [f, w] = entry.tag();
        if (f === 1 && w === WireType.LengthDelimited) key = entry.string();
        else if (f === 2 && w === WireType.LengthDelimited) value = entry.string();
        else entry.skip(w, f);
      }
      result.metadata[key] = value;
    } else {
      reader.skip(wireType, field);
    }
  }
  return result;
}

function decodeFirstViolationField(bytes: Uint8Array): string | undefined {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) {
      const violation = new BinaryReader(reader.bytes());
      while (violation.pos < violation.len) {
        const [f, w] = violation.tag();
        if (f === 1 && w === WireType.LengthDelimited) return violation.string();
        violation.skip(w, f);
      }
    } else {
      reader.skip(wireType, field);
    }
  }
  return undefined;
}
