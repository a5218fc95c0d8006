package osci

import (
	"fmt"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// Code is an OSCI feedback code (OSCI 1.2 §7, "Rückmeldungen"): 0xxx success, 3xxx a
// warning, 9xxx an error. It is written with four digits.
type Code int

// The feedback codes of OSCI-Transport 1.2 and the reference library's extensions
// (chunking 99xx, inner messages 395x).
const (
	CodeDialogClosed                    Code = 800
	CodeDialogOpen                      Code = 801
	CodeClientCipherCertExpired         Code = 3500
	CodeClientCipherCertUnchecked       Code = 3501
	CodeClientSignatureCertExpired      Code = 3700
	CodeAuthorSignatureCertExpired      Code = 3701
	CodeAuthorSignatureCertBadSignature Code = 3702
	CodeAuthorSignatureCertRevoked      Code = 3703
	CodeAuthorCipherCertExpired         Code = 3704
	CodeRecipientCipherCertExpired      Code = 3705
	CodeReaderCipherCertExpired         Code = 3706
	CodeCertCheckIncomplete             Code = 3707
	CodeRecipientSignatureCertExpired   Code = 3708
	CodeMoreDeliveries                  Code = 3800
	CodeMoreProcessCards                Code = 3801
	CodeRecipientSignatureMissing       Code = 3802
	CodeRecipientResponseUnencrypted    Code = 3803
	CodeInnerFeedback                   Code = 3950
	CodeInnerTimeout                    Code = 3951
	CodeInnerInProgress                 Code = 3952
	CodeInternalError                   Code = 9000
	CodeNotOSCI                         Code = 9100
	CodeNoPrivateKey                    Code = 9200
	CodeCipherCertRevoked               Code = 9201
	CodeNotDecryptable                  Code = 9202
	CodeInvalidRequest                  Code = 9300
	CodeWrongDialogParameters           Code = 9400
	CodeClientCipherCertMissing         Code = 9500
	CodeClientCipherCertBadSignature    Code = 9501
	CodeClientCipherCertRevoked         Code = 9502
	CodeClientCipherCertInternal        Code = 9503
	CodeSignatureRequired               Code = 9600
	CodeSignatureInvalid                Code = 9601
	CodeNotAllSigned                    Code = 9602
	CodeSignatureCheckInternal          Code = 9603
	CodeClientSignatureCertBadSignature Code = 9700
	CodeClientSignatureCertRevoked      Code = 9701
	CodeAuthorCipherCertBadSignature    Code = 9704
	CodeAuthorCipherCertRevoked         Code = 9705
	CodeRecipientCipherCertBadSignature Code = 9706
	CodeRecipientCipherCertRevoked      Code = 9707
	CodeReaderCipherCertBadSignature    Code = 9708
	CodeReaderCipherCertRevoked         Code = 9709
	CodeCertCheckInternal               Code = 9710
	CodeRecipientSigCertBadSignature    Code = 9711
	CodeRecipientSignatureCertRevoked   Code = 9712
	CodeNoMessageID                     Code = 9800
	CodeIllegalMessageID                Code = 9801
	CodeDialogRequired                  Code = 9802
	CodeNoDelivery                      Code = 9803
	CodeNoProcessCard                   Code = 9804
	CodeNotAccepted                     Code = 9805
	CodeAcceptedWithoutReply            Code = 9806
	CodeRecipientSignatureInvalid       Code = 9807
	CodeRecipientInternal               Code = 9808
	CodeForwardFailedNotReached         Code = 9809
	CodeForwardFailedReached            Code = 9810
	CodeExecutionInternal               Code = 9811
	CodeChunkExists                     Code = 9900
	CodeChunkNumber                     Code = 9901
	CodeChunkTooLarge                   Code = 9902
	CodeChunkTooSmall                   Code = 9903
	CodeMessageTooLarge                 Code = 9904
	CodeChunkInfo                       Code = 9905
)

// Text is the code's meaning in our own English wording, "" for a code the
// specification does not define.
func (c Code) Text() string {
	switch c {
	case CodeDialogClosed:
		return "Request executed, dialog closed"
	case CodeDialogOpen:
		return "Request executed, dialog continues to be open"
	case CodeClientCipherCertExpired:
		return "The client's cipher certificate is outside its validity period"
	case CodeClientCipherCertUnchecked:
		return "The client's cipher certificate could not be checked completely"
	case CodeClientSignatureCertExpired:
		return "The client's signature certificate is outside its validity period"
	case CodeAuthorSignatureCertExpired:
		return "An author's signature certificate is outside its validity period"
	case CodeAuthorSignatureCertBadSignature:
		return "The signature on an author's signature certificate is invalid"
	case CodeAuthorSignatureCertRevoked:
		return "An author's signature certificate is revoked"
	case CodeAuthorCipherCertExpired:
		return "An author's cipher certificate is outside its validity period"
	case CodeRecipientCipherCertExpired:
		return "The recipient's cipher certificate is outside its validity period"
	case CodeReaderCipherCertExpired:
		return "A reader's cipher certificate is outside its validity period"
	case CodeCertCheckIncomplete:
		return "The certificate check could not be performed completely"
	case CodeRecipientSignatureCertExpired:
		return "The recipient's signature certificate is outside its validity period"
	case CodeMoreDeliveries:
		return "More deliveries are waiting for this client"
	case CodeMoreProcessCards:
		return "More process cards match the request"
	case CodeRecipientSignatureMissing:
		return "The recipient did not sign its acceptance or processing response"
	case CodeRecipientResponseUnencrypted:
		return "The recipient answered with an unencrypted message"
	case CodeInnerFeedback:
		return "The processed inner message carries feedback of its own"
	case CodeInnerTimeout:
		return "Processing the inner message took longer than allowed"
	case CodeInnerInProgress:
		return "The inner message is still being processed"
	case CodeInternalError:
		return "Internal error of the supplier"
	case CodeNotOSCI:
		return "The message received is not a valid OSCI message"
	case CodeNoPrivateKey:
		return "The supplier holds no private key for the message-level cipher certificate"
	case CodeCipherCertRevoked:
		return "The message-level cipher certificate is revoked"
	case CodeNotDecryptable:
		return "The request could not be decrypted"
	case CodeInvalidRequest:
		return "The request data are not a valid request"
	case CodeWrongDialogParameters:
		return "ConversationId, SequenceNumber or the response to the challenge is wrong"
	case CodeClientCipherCertMissing:
		return "The request does not contain the client's cipher certificate"
	case CodeClientCipherCertBadSignature:
		return "The signature on the client's cipher certificate is invalid"
	case CodeClientCipherCertRevoked:
		return "The client's cipher certificate is revoked"
	case CodeClientCipherCertInternal:
		return "Internal error of the supplier while checking the client's cipher certificate"
	case CodeSignatureRequired:
		return "The request is unsigned but this supplier requires a signature for its type"
	case CodeSignatureInvalid:
		return "The signature of the request is invalid"
	case CodeNotAllSigned:
		return "Not every element of the request that must be signed is signed"
	case CodeSignatureCheckInternal:
		return "Internal error of the supplier while checking the signature"
	case CodeClientSignatureCertBadSignature:
		return "The signature on the client's signature certificate is invalid"
	case CodeClientSignatureCertRevoked:
		return "The client's signature certificate is revoked"
	case CodeAuthorCipherCertBadSignature:
		return "The signature on an author's cipher certificate is invalid"
	case CodeAuthorCipherCertRevoked:
		return "An author's cipher certificate is revoked"
	case CodeRecipientCipherCertBadSignature:
		return "The signature on the recipient's cipher certificate is invalid"
	case CodeRecipientCipherCertRevoked:
		return "The recipient's cipher certificate is revoked"
	case CodeReaderCipherCertBadSignature:
		return "The signature on a reader's cipher certificate is invalid"
	case CodeReaderCipherCertRevoked:
		return "A reader's cipher certificate is revoked"
	case CodeCertCheckInternal:
		return "Internal error of the supplier during the certificate check"
	case CodeRecipientSigCertBadSignature:
		return "The signature on the recipient's signature certificate is invalid"
	case CodeRecipientSignatureCertRevoked:
		return "The recipient's signature certificate is revoked"
	case CodeNoMessageID:
		return "A delivery without MessageId is refused"
	case CodeIllegalMessageID:
		return "The MessageId was not issued by this supplier or has been used already"
	case CodeDialogRequired:
		return "This request type must be sent within an explicit dialog"
	case CodeNoDelivery:
		return "No delivery matches the request"
	case CodeNoProcessCard:
		return "No process card matches the request"
	case CodeNotAccepted:
		return "The recipient did not accept the sender's delivery"
	case CodeAcceptedWithoutReply:
		return "The recipient accepted the delivery but its response holds no delivery for the sender"
	case CodeRecipientSignatureInvalid:
		return "The recipient's signature over its acceptance or processing response is invalid"
	case CodeRecipientInternal:
		return "Internal error of the recipient"
	case CodeForwardFailedNotReached:
		return "Internal error of the intermediary while forwarding or mediating; the delivery did not reach the recipient"
	case CodeForwardFailedReached:
		return "Internal error of the intermediary while forwarding or mediating; the delivery reached the recipient"
	case CodeExecutionInternal:
		return "Internal error of the supplier while executing the request"
	case CodeChunkExists:
		return "The chunk exists already"
	case CodeChunkNumber:
		return "Wrong chunk number"
	case CodeChunkTooLarge:
		return "The chunk exceeds the maximum chunk size"
	case CodeChunkTooSmall:
		return "The chunk is below the minimum chunk size"
	case CodeMessageTooLarge:
		return "The message exceeds the maximum message size"
	case CodeChunkInfo:
		return "Wrong chunk information"
	}
	return ""
}

// String is the code as written on the wire, four digits.
func (c Code) String() string { return fmt.Sprintf("%04d", int(c)) }

// Known reports whether the code is one the specification defines.
func (c Code) Known() bool { return c.Text() != "" }

// Success reports a code of the 0xxx class: the request was executed.
func (c Code) Success() bool { return c >= 0 && c < 1000 }

// Warning reports a code of the 3xxx class: executed, with a remark.
func (c Code) Warning() bool { return c >= 3000 && c < 4000 }

// Error reports a code of the 9xxx class: the request was refused.
func (c Code) Error() bool { return c >= 9000 && c < 10000 }

// Codes lists every defined code in ascending order.
func Codes() []Code {
	var out []Code
	for c := Code(0); c < 10000; c++ {
		if c.Known() {
			out = append(out, c)
		}
	}
	return out
}

// FeedbackEntry is one osci:Entry of an osci:Feedback.
type FeedbackEntry struct {
	Lang string
	Code Code
	Text string
}

// Entry builds a feedback entry with our text for the code.
func Entry(c Code) FeedbackEntry { return FeedbackEntry{Lang: "en", Code: c, Text: c.Text()} }

const maxFeedbackEntries = 64

func parseFeedback(e *xmldsig.Element) ([]FeedbackEntry, error) {
	kids, err := onlyElements(e)
	if err != nil {
		return nil, err
	}
	if len(kids) == 0 || len(kids) > maxFeedbackEntries {
		return nil, formatErr("osci:Feedback with %d entries", len(kids))
	}
	out := make([]FeedbackEntry, 0, len(kids))
	for _, k := range kids {
		if !isOSCI(k, "Entry") {
			return nil, formatErr("<%s> in osci:Feedback", k.Local)
		}
		parts, err := onlyElements(k)
		if err != nil {
			return nil, err
		}
		if len(parts) != 2 || !isOSCI(parts[0], "Code") || !isOSCI(parts[1], "Text") {
			return nil, formatErr("osci:Entry must hold Code, Text")
		}
		codeText, err := text(parts[0], 8)
		if err != nil {
			return nil, err
		}
		n, err := number(codeText)
		if err != nil || len(codeText) != 4 {
			return nil, formatErr("feedback code %q", codeText)
		}
		t, err := text(parts[1], maxShortText)
		if err != nil {
			return nil, err
		}
		lang, _ := k.AttrNS(xmldsig.NamespaceXML, "lang")
		out = append(out, FeedbackEntry{Lang: lang, Code: Code(n), Text: t})
	}
	return out, nil
}
