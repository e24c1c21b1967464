//! The AWS managed policies berth knows, so that `AttachRolePolicy` with
//! `arn:aws:iam::aws:policy/...` works as it does on AWS for the common ones.

/// `(name, document)` of each AWS managed policy berth carries.
pub const POLICIES: &[(&str, &str)] = &[
    ("AdministratorAccess", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#),
    (
        "AmazonECS_FullAccess",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecs:*","logs:*"],"Resource":"*"}]}"#,
    ),
    (
        "ReadOnlyAccess",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecs:Describe*","ecs:List*","iam:Get*","iam:List*","logs:Describe*","logs:Get*"],"Resource":"*"}]}"#,
    ),
    (
        "AmazonECSTaskExecutionRolePolicy",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken","ecr:BatchCheckLayerAvailability","ecr:GetDownloadUrlForLayer","ecr:BatchGetImage","logs:CreateLogStream","logs:PutLogEvents"],"Resource":"*"}]}"#,
    ),
];

/// The ARN prefix of AWS managed policies.
pub const ARN_PREFIX: &str = "arn:aws:iam::aws:policy/";

/// The document of the AWS managed policy `arn`, if berth carries it.
pub fn document(arn: &str) -> Option<&'static str> {
    let name = arn.strip_prefix(ARN_PREFIX)?.rsplit('/').next()?;
    POLICIES.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
}
