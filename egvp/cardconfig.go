package egvp

import (
	"errors"
	"strings"
)

// BusinessCardConfig is the Visitenkarte (visitenkarte.xml) of the authority's
// mailbox as registered in the SAFE directory, in the shape both EGVP transports'
// configuration sections take it (osci.business_card, egvp_enterprise.business_card).
type BusinessCardConfig struct {
	Organisation     string `yaml:"organisation"`
	OrganisationUnit string `yaml:"organisation_unit"`
	Name             string `yaml:"name"`
	Street           string `yaml:"street"`
	HouseNumber      string `yaml:"house_number"`
	PostCode         string `yaml:"post_code"`
	City             string `yaml:"city"`
	State            string `yaml:"state"`
	Country          string `yaml:"country"`
	Email            string `yaml:"email"`
	Phone            string `yaml:"phone"`
	Fax              string `yaml:"fax"`
	// SafeID is the mailbox's SAFE-ID (Nutzer_ID), required; Role its Rollen_ID
	// (egvp_bebpo for a beBPo).
	SafeID string `yaml:"safe_id"`
	Role   string `yaml:"role"`
}

// Validate checks what an answer cannot do without: the SAFE-ID.
func (b *BusinessCardConfig) Validate() error {
	if strings.TrimSpace(b.SafeID) == "" {
		return errors.New("business_card.safe_id: required")
	}
	return nil
}

// Card is the Visitenkarte the configuration describes.
func (b *BusinessCardConfig) Card() BusinessCard {
	return BusinessCard{Organisation: b.Organisation, OrganisationUnit: b.OrganisationUnit, Name: b.Name,
		Street: b.Street, HouseNumber: b.HouseNumber, PostCode: b.PostCode, City: b.City, State: b.State,
		Country: b.Country, Email: b.Email, Phone: b.Phone, Fax: b.Fax, SafeID: strings.TrimSpace(b.SafeID), Role: b.Role}
}
