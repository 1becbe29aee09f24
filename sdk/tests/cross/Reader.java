// The reader of the cross-language test: reads one approval by id with the
// Java SDK. Run as a single-file program on the SDK's class path:
//   java -cp CLASSPATH Reader.java TARGET ID
// Prints `<status> <decided_by>`, e.g. `APPROVED alice`.
import dev.approvald.ApprovalGate;
import dev.approvald.approval.v1.Approval;

public class Reader {
  public static void main(String[] args) {
    try (ApprovalGate gate = ApprovalGate.builder(args[0]).build()) {
      Approval approval = gate.getApproval(args[1]);
      String status = approval.getStatus().name().replace("APPROVAL_STATUS_", "");
      System.out.println(status + " " + approval.getDecidedBy());
    }
  }
}
