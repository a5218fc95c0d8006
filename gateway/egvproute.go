package gateway

// secureRoutes are the mailbox kinds whose route to a court is a secure one
// (sicherer Übermittlungsweg, § 130a Abs. 4 Satz 1 ZPO in the version in
// force since 1 January 2022; § 55a Abs. 4 VwGO, § 65a Abs. 4 SGG, § 46c
// Abs. 4 ArbGG list the same). The Justiz VHN is missing on purpose: it
// proves that a court sent the message, but a court's own documents need a
// qualified signature (§ 130b ZPO), so its route does not stand in for one.
var secureRoutes = map[string]string{
	"bea":   "§ 130a Abs. 4 Satz 1 Nr. 2 ZPO (beA)",
	"ben":   "§ 130a Abs. 4 Satz 1 Nr. 2 ZPO (beN)",
	"bebpo": "§ 130a Abs. 4 Satz 1 Nr. 3 ZPO (beBPo)",
	"ebo":   "§ 130a Abs. 4 Satz 1 Nr. 5 ZPO (eBO)",
}

// SecureRoute names the provision that makes the message's route a secure
// one, on which a document signed simply by the responsible person needs no
// qualified signature (§ 130a Abs. 3 Satz 1 Alt. 2 ZPO): set only for a
// verified VHN of a beA, beN, beBPo or eBO. Empty otherwise, also for nil.
func (f *EGVPFields) SecureRoute() string {
	if f == nil || f.Origin != "vhn" {
		return ""
	}
	return secureRoutes[f.OriginMailbox]
}
