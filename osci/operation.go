package osci

import (
	"strings"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

const (
	maxBundles    = 1024
	maxSelections = 1024
)

// parseOperation reads the children OSCI defines inside request and response elements.
// One reader serves every type: the schemas use the same few children, and checkType and
// the dialog logic decide which a type must have.
func parseOperation(e *xmldsig.Element) (*Operation, error) {
	op := &Operation{Element: e, Name: e.Local}
	kids, err := onlyElements(e)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, k := range kids {
		if k.Space != NamespaceOSCI {
			return nil, formatErr("<%s> in osci:%s", k.Local, e.Local)
		}
		bundle := strings.HasSuffix(k.Local, "ProcessCardBundle")
		if seen[k.Local] && !bundle {
			return nil, formatErr("osci:%s appears twice in osci:%s", k.Local, e.Local)
		}
		seen[k.Local] = true
		if err := op.readChild(k, bundle); err != nil {
			return nil, err
		}
	}
	return op, nil
}

func (op *Operation) readChild(k *xmldsig.Element, bundle bool) error {
	var err error
	switch {
	case bundle:
		if len(op.ProcessCards) == maxBundles {
			return formatErr("more than %d process cards", maxBundles)
		}
		var b ProcessCardBundle
		if b, err = parseProcessCardBundle(k); err == nil {
			op.ProcessCards = append(op.ProcessCards, b)
		}
	case k.Local == "Feedback":
		op.Feedback, err = parseFeedback(k)
	case k.Local == "MessageId":
		op.MessageID, err = messageID(k)
	case k.Local == "Subject":
		op.Subject, err = text(k, maxSubjectText)
	case k.Local == "ContentReceiver":
		op.ContentReceiver, _ = k.Attr("URI")
		if op.ContentReceiver == "" || len(k.Children) > 0 {
			err = formatErr("osci:ContentReceiver must be empty with a URI")
		}
	case k.Local == "SelectionRule":
		op.Selection, err = parseSelection(k)
	case k.Local == "Quantity":
		v, _ := k.Attr("Limit")
		if op.Quantity, err = number(v); err == nil && op.Quantity == 0 {
			err = formatErr("osci:Quantity Limit 0")
		}
	case k.Local == "MessageIdResponse":
		op.MessageIDResponse = true
	case strings.HasPrefix(k.Local, "fetch"):
		// A fetch response echoes the request's selection inside an element named
		// for the request.
		err = op.readEcho(k)
	default:
		err = formatErr("<%s> in osci:%s", k.Local, op.Name)
	}
	return err
}

func (op *Operation) readEcho(k *xmldsig.Element) error {
	kids, err := onlyElements(k)
	if err != nil {
		return err
	}
	for _, c := range kids {
		switch {
		case isOSCI(c, "SelectionRule") && op.Selection == nil:
			if op.Selection, err = parseSelection(c); err != nil {
				return err
			}
		case isOSCI(c, "Quantity"):
		default:
			return formatErr("<%s> in osci:%s", c.Local, k.Local)
		}
	}
	return nil
}

func parseSelection(e *xmldsig.Element) (*Selection, error) {
	kids, err := onlyElements(e)
	if err != nil {
		return nil, err
	}
	if len(kids) == 0 || len(kids) > maxSelections {
		return nil, formatErr("osci:SelectionRule with %d elements", len(kids))
	}
	s := &Selection{}
	for _, k := range kids {
		switch {
		case isOSCI(k, "MessageId"):
			mid, err := messageID(k)
			if err != nil {
				return nil, err
			}
			s.MessageIDs = append(s.MessageIDs, mid)
		case (isOSCI(k, "ReceptionOfDelivery") || isOSCI(k, "RecentModification")) && len(kids) == 1:
			v, err := text(k, 64)
			if err != nil {
				return nil, err
			}
			if _, err := dateTime(v); err != nil {
				return nil, err
			}
			if k.Local == "ReceptionOfDelivery" {
				s.ReceptionOfDelivery = v
			} else {
				s.RecentModification = v
			}
			s.NoReception, _ = k.Attr("NoReception")
			s.Role, _ = k.Attr("Role")
		default:
			return nil, formatErr("<%s> in osci:SelectionRule", k.Local)
		}
	}
	return s, nil
}
