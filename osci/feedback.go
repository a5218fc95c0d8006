package osci

import (
	"fmt"
	"sort"

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

// codeTexts are our English wordings of what each code means.
var codeTexts = map[Code]string{
	CodeDialogClosed:                    "Request executed, dialog closed",
	CodeDialogOpen:                      "Request executed, dialog continues to be open",
	CodeClientCipherCertExpired:         "The client's cipher certificate is outside its validity period",
	CodeClientCipherCertUnchecked:       "The client's cipher certificate could not be checked completely",
	CodeClientSignatureCertExpired:      "The client's signature certificate is outside its validity period",
	CodeAuthorSignatureCertExpired:      "An author's signature certificate is outside its validity period",
	CodeAuthorSignatureCertBadSignature: "The signature on an author's signature certificate is invalid",
	CodeAuthorSignatureCertRevoked:      "An author's signature certificate is revoked",
	CodeAuthorCipherCertExpired:         "An author's cipher certificate is outside its validity period",
	CodeRecipientCipherCertExpired:      "The recipient's cipher certificate is outside its validity period",
	CodeReaderCipherCertExpired:         "A reader's cipher certificate is outside its validity period",
	CodeCertCheckIncomplete:             "The certificate check could not be performed completely",
	CodeRecipientSignatureCertExpired:   "The recipient's signature certificate is outside its validity period",
	CodeMoreDeliveries:                  "More deliveries are waiting for this client",
	CodeMoreProcessCards:                "More process cards match the request",
	CodeRecipientSignatureMissing:       "The recipient did not sign its acceptance or processing response",
	CodeRecipientResponseUnencrypted:    "The recipient answered with an unencrypted message",
	CodeInnerFeedback:                   "The processed inner message carries feedback of its own",
	CodeInnerTimeout:                    "Processing the inner message took longer than allowed",
	CodeInnerInProgress:                 "The inner message is still being processed",
	CodeInternalError:                   "Internal error of the supplier",
	CodeNotOSCI:                         "The message received is not a valid OSCI message",
	CodeNoPrivateKey:                    "The supplier holds no private key for the message-level cipher certificate",
	CodeCipherCertRevoked:               "The message-level cipher certificate is revoked",
	CodeNotDecryptable:                  "The request could not be decrypted",
	CodeInvalidRequest:                  "The request data are not a valid request",
	CodeWrongDialogParameters:           "ConversationId, SequenceNumber or the response to the challenge is wrong",
	CodeClientCipherCertMissing:         "The request does not contain the client's cipher certificate",
	CodeClientCipherCertBadSignature:    "The signature on the client's cipher certificate is invalid",
	CodeClientCipherCertRevoked:         "The client's cipher certificate is revoked",
	CodeClientCipherCertInternal:        "Internal error of the supplier while checking the client's cipher certificate",
	CodeSignatureRequired:               "The request is unsigned but this supplier requires a signature for its type",
	CodeSignatureInvalid:                "The signature of the request is invalid",
	CodeNotAllSigned:                    "Not every element of the request that must be signed is signed",
	CodeSignatureCheckInternal:          "Internal error of the supplier while checking the signature",
	CodeClientSignatureCertBadSignature: "The signature on the client's signature certificate is invalid",
	CodeClientSignatureCertRevoked:      "The client's signature certificate is revoked",
	CodeAuthorCipherCertBadSignature:    "The signature on an author's cipher certificate is invalid",
	CodeAuthorCipherCertRevoked:         "An author's cipher certificate is revoked",
	CodeRecipientCipherCertBadSignature: "The signature on the recipient's cipher certificate is invalid",
	CodeRecipientCipherCertRevoked:      "The recipient's cipher certificate is revoked",
	CodeReaderCipherCertBadSignature:    "The signature on a reader's cipher certificate is invalid",
	CodeReaderCipherCertRevoked:         "A reader's cipher certificate is revoked",
	CodeCertCheckInternal:               "Internal error of the supplier during the certificate check",
	CodeRecipientSigCertBadSignature:    "The signature on the recipient's signature certificate is invalid",
	CodeRecipientSignatureCertRevoked:   "The recipient's signature certificate is revoked",
	CodeNoMessageID:                     "A delivery without MessageId is refused",
	CodeIllegalMessageID:                "The MessageId was not issued by this supplier or has been used already",
	CodeDialogRequired:                  "This request type must be sent within an explicit dialog",
	CodeNoDelivery:                      "No delivery matches the request",
	CodeNoProcessCard:                   "No process card matches the request",
	CodeNotAccepted:                     "The recipient did not accept the sender's delivery",
	CodeAcceptedWithoutReply:            "The recipient accepted the delivery but its response holds no delivery for the sender",
	CodeRecipientSignatureInvalid:       "The recipient's signature over its acceptance or processing response is invalid",
	CodeRecipientInternal:               "Internal error of the recipient",
	CodeForwardFailedNotReached:         "Internal error of the intermediary while forwarding or mediating; the delivery did not reach the recipient",
	CodeForwardFailedReached:            "Internal error of the intermediary while forwarding or mediating; the delivery reached the recipient",
	CodeExecutionInternal:               "Internal error of the supplier while executing the request",
	CodeChunkExists:                     "The chunk exists already",
	CodeChunkNumber:                     "Wrong chunk number",
	CodeChunkTooLarge:                   "The chunk exceeds the maximum chunk size",
	CodeChunkTooSmall:                   "The chunk is below the minimum chunk size",
	CodeMessageTooLarge:                 "The message exceeds the maximum message size",
	CodeChunkInfo:                       "Wrong chunk information",
}

// String is the code as written on the wire, four digits.
func (c Code) String() string { return fmt.Sprintf("%04d", int(c)) }

// Text is the code's meaning, "" for a code the specification does not define.
func (c Code) Text() string { return codeTexts[c] }

// Known reports whether the code is one the specification defines.
func (c Code) Known() bool { _, ok := codeTexts[c]; return ok }

// Success reports a code of the 0xxx class: the request was executed.
func (c Code) Success() bool { return c >= 0 && c < 1000 }

// Warning reports a code of the 3xxx class: executed, with a remark.
func (c Code) Warning() bool { return c >= 3000 && c < 4000 }

// Error reports a code of the 9xxx class: the request was refused.
func (c Code) Error() bool { return c >= 9000 && c < 10000 }

// Codes lists every defined code in ascending order.
func Codes() []Code {
	out := make([]Code, 0, len(codeTexts))
	for c := range codeTexts {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
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
