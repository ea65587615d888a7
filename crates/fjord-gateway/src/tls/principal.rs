//! Kafka's `ssl.principal.mapping.rules`: from a client certificate's
//! subject (RFC 2253, as Java's `X500Principal.getName()` writes it) to the
//! name of its `User:` principal.
//!
//! The rule language is Kafka's: a comma-separated list of `DEFAULT` (the
//! distinguished name as it is) and `RULE:pattern/replacement/[LU]` (when
//! `pattern` matches the whole name, the name becomes `replacement` with
//! `$1`… replaced by the groups, then lower- or upper-cased). `\` escapes a
//! `/` (or any character) inside pattern and replacement. The first rule
//! that applies wins; a name no rule applies to fails authentication.

use regex::Regex;

/// Kafka's default: the distinguished name unchanged.
pub const DEFAULT_RULES: &str = "DEFAULT";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingRulesError {
    #[error("ssl.principal.mapping.rules: invalid rule {rule:?}")]
    InvalidRule { rule: String },
    #[error("ssl.principal.mapping.rules: invalid pattern in {rule:?}: {reason}")]
    InvalidPattern { rule: String, reason: String },
}

/// No rule applied to a certificate's distinguished name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("no ssl.principal.mapping.rules apply to {dn:?}")]
pub struct NoMatchingRule {
    pub dn: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

#[derive(Clone, Debug)]
enum Rule {
    Default,
    Rule {
        /// `^(?:pattern)$`: Kafka applies a rule only on a whole-name match.
        pattern: Regex,
        replacement: Vec<Piece>,
        case: Case,
    },
}

/// A replacement, parsed once: literal text and group references.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
}

/// Parsed `ssl.principal.mapping.rules`.
#[derive(Clone, Debug)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
    /// The rules as configured: what two mappers are compared by.
    source: String,
}

impl PartialEq for PrincipalMapper {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for PrincipalMapper {}

impl Default for PrincipalMapper {
    fn default() -> Self {
        PrincipalMapper {
            rules: vec![Rule::Default],
            source: DEFAULT_RULES.to_owned(),
        }
    }
}

impl PrincipalMapper {
    /// Parses Kafka's rule list. Empty entries (`,,`) are skipped, as Kafka
    /// does; an empty list maps nothing (every name fails), also as Kafka.
    pub fn from_rules(text: &str) -> Result<PrincipalMapper, MappingRulesError> {
        let rules = split_rules(text.trim())?
            .into_iter()
            .map(parse_rule)
            .collect::<Result<_, _>>()?;
        Ok(PrincipalMapper {
            rules,
            source: text.to_owned(),
        })
    }

    /// The principal name for a distinguished name.
    pub fn name(&self, dn: &str) -> Result<String, NoMatchingRule> {
        self.rules
            .iter()
            .find_map(|rule| rule.apply(dn))
            .ok_or_else(|| NoMatchingRule { dn: dn.to_owned() })
    }
}

impl Rule {
    fn apply(&self, dn: &str) -> Option<String> {
        let Rule::Rule {
            pattern,
            replacement,
            case,
        } = self
        else {
            return Some(dn.to_owned());
        };
        let groups = pattern.captures(dn)?;
        let mut out = String::new();
        for piece in replacement {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Group(n) => out.push_str(groups.get(*n).map_or("", |m| m.as_str())),
            }
        }
        Some(match case {
            Case::Keep => out,
            Case::Lower => out.to_lowercase(),
            Case::Upper => out.to_uppercase(),
        })
    }
}

/// Splits the list at commas outside rules: a comma inside a rule's pattern
/// or replacement belongs to the rule (`RULE:^CN=(.*?),OU=(.*?)$/$1/`). A
/// rule's text runs from `RULE:` over two `/`-terminated parts (with `\`
/// escapes) and an optional `L`/`U`; anything else runs to the next comma.
fn split_rules(text: &str) -> Result<Vec<&str>, MappingRulesError> {
    let mut rules = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            return Ok(rules);
        }
        let end = if let Some(body) = rest.strip_prefix("RULE:") {
            match rule_end(body) {
                Some(len) => "RULE:".len() + len,
                None => rest.find(',').unwrap_or(rest.len()),
            }
        } else {
            rest.find(',').unwrap_or(rest.len())
        };
        let (rule, after) = rest.split_at(end);
        // What follows a rule must be blanks up to a comma or the end.
        let tail = after.trim_start();
        if !(tail.is_empty() || tail.starts_with(',')) {
            let junk_end = after.find(',').unwrap_or(after.len());
            return Err(MappingRulesError::InvalidRule {
                rule: format!("{rule}{}", &after[..junk_end]).trim().to_owned(),
            });
        }
        rules.push(rule.trim_end());
        rest = after;
    }
}

/// The length of `pattern/replacement/[LU]` at the start of `body`.
fn rule_end(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut i = 0;
    for _part in 0..2 {
        loop {
            match bytes.get(i)? {
                b'\\' => i += 2,
                b'/' => {
                    i += 1;
                    break;
                }
                _ => i += 1,
            }
        }
    }
    if matches!(bytes.get(i), Some(b'L' | b'U')) {
        i += 1;
    }
    Some(i)
}

fn parse_rule(rule: &str) -> Result<Rule, MappingRulesError> {
    let invalid = || MappingRulesError::InvalidRule {
        rule: rule.to_owned(),
    };
    if rule == "DEFAULT" {
        return Ok(Rule::Default);
    }
    let body = rule.strip_prefix("RULE:").ok_or_else(invalid)?;
    let (pattern, rest) = split_part(body).ok_or_else(invalid)?;
    let (replacement, flags) = split_part(rest).ok_or_else(invalid)?;
    let case = match flags {
        "" => Case::Keep,
        "L" => Case::Lower,
        "U" => Case::Upper,
        _ => return Err(invalid()),
    };
    let pattern = Regex::new(&format!("^(?:{pattern})$")).map_err(|err| {
        MappingRulesError::InvalidPattern {
            rule: rule.to_owned(),
            reason: err.to_string(),
        }
    })?;
    let replacement = parse_replacement(replacement);
    if let Some(Piece::Group(n)) = replacement
        .iter()
        .find(|p| matches!(p, Piece::Group(n) if *n >= pattern.captures_len()))
    {
        return Err(MappingRulesError::InvalidPattern {
            rule: rule.to_owned(),
            reason: format!("the replacement names group {n}, which the pattern lacks"),
        });
    }
    Ok(Rule::Rule {
        pattern,
        replacement,
        case,
    })
}

/// Up to the first unescaped `/`: (the part as written, what follows it).
fn split_part(text: &str) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'/' => return Some((&text[..i], &text[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// Java's `Matcher.appendReplacement` syntax: `$N` a group, `\x` the
/// character x.
fn parse_replacement(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    literal.push(escaped);
                }
            }
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut n = 0usize;
                while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                    n = n.saturating_mul(10).saturating_add(d as usize);
                    chars.next();
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Group(n));
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_valid_rules_parse() {
        for rules in [
            "DEFAULT",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L",
            "RULE:^cn=(.?),ou=(.?),dc=(.?),dc=(.?)$/$1@$2/U",
            "RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/",
            "RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1/",
        ] {
            PrincipalMapper::from_rules(rules).unwrap_or_else(|e| panic!("{rules}: {e}"));
        }
    }

    #[test]
    fn kafkas_invalid_rules_are_refused() {
        for rules in [
            "default",
            "DEFAUL",
            "DEFAULT/L",
            "DEFAULT/U",
            "RULE:CN=(.*?),OU=ServiceUsers.*/$1",
            "rule:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/L",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
        ] {
            assert!(PrincipalMapper::from_rules(rules).is_err(), "{rules}");
        }
    }

    /// Kafka's SslPrincipalMapperTest and the examples of its security docs.
    #[test]
    fn kafkas_examples_map_as_documented() {
        let rules = [
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
            "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
            "DEFAULT",
        ]
        .join(", ");
        let mapper = PrincipalMapper::from_rules(&rules).expect("rules");
        let cases = [
            ("CN=Duke,OU=ServiceUsers,O=Org,C=US", "duke"),
            ("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US", "duke@sme"),
            ("cn=duke,ou=sme,dc=mycp,dc=com", "DUKE@SME"),
            ("cN=duke,OU=JavaSoft,O=Sun Microsystems", "DUKE"),
            (
                "OU=JavaSoft,O=Sun Microsystems,C=US",
                "OU=JavaSoft,O=Sun Microsystems,C=US",
            ),
        ];
        for (dn, name) in cases {
            assert_eq!(mapper.name(dn).as_deref(), Ok(name), "{dn}");
        }
        // docs/security: service users and admins.
        let docs = PrincipalMapper::from_rules(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\n\
             RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,\n\
             RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,\n\
             DEFAULT",
        )
        .expect("docs rules");
        assert_eq!(
            docs.name("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .as_deref(),
            Ok("serviceuser")
        );
        assert_eq!(
            docs.name("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .as_deref(),
            Ok("adminuser@admin")
        );
    }

    #[test]
    fn no_rule_applying_is_an_error_and_the_default_keeps_the_name() {
        let only = PrincipalMapper::from_rules("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/").unwrap();
        assert_eq!(
            only.name("CN=x,OU=Other"),
            Err(NoMatchingRule {
                dn: "CN=x,OU=Other".into()
            })
        );
        assert_eq!(
            PrincipalMapper::default().name("CN=a,O=b").as_deref(),
            Ok("CN=a,O=b")
        );
        assert!(
            PrincipalMapper::from_rules("")
                .unwrap()
                .name("CN=a")
                .is_err()
        );
    }

    #[test]
    fn commas_inside_rules_and_empty_entries() {
        // Kafka's testCommaWithWhitespace: an escaped comma inside a CN.
        let mapper = PrincipalMapper::from_rules(r"RULE:^CN=((\\, *|\w)+)(,.*|$)/$1/,DEFAULT")
            .expect("rules");
        assert_eq!(
            mapper
                .name(r"CN=Tkac\, Adam,OU=ITZ,DC=geodis,DC=cz")
                .as_deref(),
            Ok(r"Tkac\, Adam")
        );
        let mapper = PrincipalMapper::from_rules(",,RULE:^a$/b/,,,DEFAULT,,").expect("rules");
        assert_eq!(mapper.rules.len(), 2);
        assert_eq!(mapper.name("a").as_deref(), Ok("b"));
        assert_eq!(mapper.name("c").as_deref(), Ok("c"));
        // An escaped slash in the pattern and in the replacement.
        let mapper = PrincipalMapper::from_rules(r"RULE:^CN=a\/b$/x\/$0/").expect("rules");
        assert_eq!(mapper.name("CN=a/b").as_deref(), Ok("x/CN=a/b"));
    }

    #[test]
    fn bad_patterns_and_groups_are_refused() {
        assert!(matches!(
            PrincipalMapper::from_rules("RULE:^CN=(.*$/$1/"),
            Err(MappingRulesError::InvalidPattern { .. })
        ));
        assert!(matches!(
            PrincipalMapper::from_rules("RULE:^CN=(.*)$/$2/"),
            Err(MappingRulesError::InvalidPattern { .. })
        ));
    }
}
