//! Tests of the registration rules, the defaults, and the stored shape.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::{build, fargate_memory_allowed, parse_cpu, parse_memory, validate_family, Registration};
use crate::model::*;
use crate::{ApiError, ErrorKind};

// ---------------------------------------------------------------- helpers

const ARN: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3";
const CALLER: &str = "arn:aws:iam::123456789012:user/dev";
const EXEC_ROLE: &str = "arn:aws:iam::123456789012:role/ecsTaskExecutionRole";
const ECR_IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1";

fn reg() -> Registration<'static> {
    Registration { arn: ARN, revision: 3, registered_at: 1_700_000_000.25, registered_by: CALLER }
}

/// A container EC2 accepts on its own: named, an image, 128 MiB.
fn container(name: &str) -> ContainerDefinition {
    ContainerDefinition {
        name: Some(name.into()),
        image: Some("busybox".into()),
        memory: Some(128),
        ..Default::default()
    }
}

fn request(containers: Vec<ContainerDefinition>) -> RegisterTaskDefinitionRequest {
    RegisterTaskDefinitionRequest {
        family: Some("web".into()),
        container_definitions: Some(containers),
        ..Default::default()
    }
}

/// A valid Fargate request: awsvpc, 256/512, an execution role.
fn fargate(containers: Vec<ContainerDefinition>) -> RegisterTaskDefinitionRequest {
    RegisterTaskDefinitionRequest {
        requires_compatibilities: Some(vec![Compatibility::Fargate]),
        network_mode: Some(NetworkMode::Awsvpc),
        cpu: Some("256".into()),
        memory: Some("512".into()),
        execution_role_arn: Some(EXEC_ROLE.into()),
        ..request(containers)
    }
}

fn ok(req: &RegisterTaskDefinitionRequest) -> TaskDefinition {
    match build(req, &reg()) {
        Ok(td) => td,
        Err(e) => panic!("expected success, got {e}"),
    }
}

fn err(req: &RegisterTaskDefinitionRequest) -> ApiError {
    match build(req, &reg()) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

/// Asserts a `ClientException` with exactly `message`.
fn assert_client(req: &RegisterTaskDefinitionRequest, message: &str) {
    let e = err(req);
    assert_eq!(e.kind, ErrorKind::Client, "{e}");
    assert_eq!(e.message, message);
}

/// Asserts a `ClientException` whose message contains every one of `parts`.
fn assert_client_mentions(req: &RegisterTaskDefinitionRequest, parts: &[&str]) {
    let e = err(req);
    assert_eq!(e.kind, ErrorKind::Client, "{e}");
    for part in parts {
        assert!(e.message.contains(part), "{:?} lacks {part:?}", e.message);
    }
}

fn first_container(td: &TaskDefinition) -> &ContainerDefinition {
    &td.container_definitions.as_deref().unwrap_or_default()[0]
}

fn attribute_names(td: &TaskDefinition) -> Vec<String> {
    td.requires_attributes.iter().flatten().filter_map(|a| a.name.clone()).collect()
}

fn port(container_port: i32, host_port: Option<i32>) -> PortMapping {
    PortMapping { container_port: Some(container_port), host_port, ..Default::default() }
}

fn depends(on: &str, condition: ContainerCondition) -> Option<Vec<ContainerDependency>> {
    Some(vec![ContainerDependency { container_name: Some(on.into()), condition: Some(condition) }])
}

fn health(command: &[&str]) -> HealthCheck {
    HealthCheck { command: Some(command.iter().map(|s| s.to_string()).collect()), ..Default::default() }
}

// ---------------------------------------------------------------- family

#[test]
fn family_accepts_letters_numbers_hyphens_underscores() {
    for family in ["web", "Web_App-2", "a", &"x".repeat(255)] {
        assert_eq!(validate_family(family), Ok(()), "{family}");
    }
}

#[test]
fn family_rejects_blank_and_invalid_characters() {
    assert_eq!(validate_family("").unwrap_err().message, "Family can not be blank.");
    for family in ["web app", "web:1", "wéb", "a/b", "weird_dir@letssee.cats"] {
        let e = validate_family(family).unwrap_err();
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Client, "Family contains invalid characters."));
    }
    assert!(validate_family(&"x".repeat(256)).unwrap_err().message.contains("255"));
}

#[test]
fn build_checks_the_family() {
    let req = RegisterTaskDefinitionRequest { family: Some("my family".into()), ..request(vec![container("a")]) };
    assert_client(&req, "Family contains invalid characters.");
}

// ---------------------------------------------------------------- container identity

#[test]
fn container_list_must_not_be_empty() {
    assert_client(&request(vec![]), "Container list cannot be empty.");
}

#[test]
fn at_most_ten_containers() {
    let ten: Vec<_> = (0..10).map(|i| container(&format!("c{i}"))).collect();
    assert_eq!(ok(&request(ten.clone())).container_definitions.map(|c| c.len()), Some(10));
    let mut eleven = ten;
    eleven.push(container("c10"));
    assert_client(&request(eleven), "Too many containers.");
}

#[test]
fn container_name_is_required_and_checked() {
    let unnamed = ContainerDefinition { name: None, ..container("a") };
    assert_client(&request(vec![unnamed]), "Container.name should not be null or empty.");
    assert_client(&request(vec![container("")]), "Container.name should not be null or empty.");
    assert_client(&request(vec![container("my app")]), "Container.name contains invalid characters.");
    assert_client(&request(vec![container(&"n".repeat(256))]), "Container.name contains invalid characters.");
    ok(&request(vec![container(&"n".repeat(255))]));
}

#[test]
fn container_image_is_required_and_checked() {
    let no_image = ContainerDefinition { image: None, ..container("a") };
    assert_client(&request(vec![no_image]), "Container.image should not be null or empty.");
    for image in ["$IMAGE_NAME", "busybox ", "busybox@md5:abc", "busybox@sha256:abc", &"b".repeat(256)] {
        let c = ContainerDefinition { image: Some(image.into()), ..container("a") };
        assert_client(&request(vec![c]), "Container.image contains invalid characters.");
    }
    let digest = format!("registry.local:5000/team/app@sha256:{}", "ab".repeat(32));
    for image in ["busybox", "busybox:1.36", ECR_IMAGE, "quay.io/org/app:v1#x", digest.as_str()] {
        let c = ContainerDefinition { image: Some(image.into()), ..container("a") };
        ok(&request(vec![c]));
    }
}

#[test]
fn container_names_are_unique() {
    assert_client(
        &request(vec![container("a"), container("a")]),
        "Container names must be unique within a Task Definition.",
    );
}

#[test]
fn one_container_must_be_essential() {
    let side = |name| ContainerDefinition { essential: Some(false), ..container(name) };
    assert_client(&request(vec![side("a"), side("b")]), "Task definition doesn't have any essential container.");
    ok(&request(vec![side("a"), container("b")]));
}

// ---------------------------------------------------------------- container memory and cpu

#[test]
fn ec2_container_needs_memory_or_reservation_without_task_memory() {
    let bare = ContainerDefinition { memory: None, ..container("app") };
    assert_client(
        &request(vec![bare.clone()]),
        "Invalid setting for container 'app'. At least one of 'memory' or 'memoryReservation' must be specified.",
    );
    let soft = ContainerDefinition { memory_reservation: Some(64), ..bare.clone() };
    ok(&request(vec![soft]));
    let task_memory = RegisterTaskDefinitionRequest { memory: Some("512".into()), ..request(vec![bare]) };
    ok(&task_memory);
}

#[test]
fn memory_must_be_at_least_the_reservation() {
    let c = ContainerDefinition { memory: Some(100), memory_reservation: Some(200), ..container("app") };
    assert_client_mentions(&request(vec![c]), &["'app'", "'memory'", "'memoryReservation'"]);
    let equal = ContainerDefinition { memory: Some(200), memory_reservation: Some(200), ..container("app") };
    ok(&request(vec![equal]));
}

#[test]
fn container_amounts_must_be_positive() {
    let zero = ContainerDefinition { memory: Some(0), ..container("app") };
    assert_client(&request(vec![zero]), "Invalid 'memory' setting for container 'app'.");
    let soft = ContainerDefinition { memory_reservation: Some(-1), ..container("app") };
    assert_client(&request(vec![soft]), "Invalid 'memoryReservation' setting for container 'app'.");
    let cpu = ContainerDefinition { cpu: Some(-5), ..container("app") };
    assert_client(&request(vec![cpu]), "Invalid 'cpu' setting for container 'app'.");
}

#[test]
fn container_memory_cannot_exceed_task_memory() {
    let big = ContainerDefinition { memory: Some(1024), ..container("worker") };
    let req = RegisterTaskDefinitionRequest { memory: Some("512".into()), ..request(vec![big]) };
    assert_client(&req, "The 'memory' setting for container 'worker' is greater than for the task.");
}

#[test]
fn reservations_must_fit_in_task_memory() {
    let a = ContainerDefinition { memory: None, memory_reservation: Some(300), ..container("a") };
    let b = ContainerDefinition { memory: Some(300), ..container("b") };
    let req = RegisterTaskDefinitionRequest { memory: Some("512".into()), ..request(vec![a.clone(), b]) };
    assert_client(
        &req,
        "The sum of all container 'memoryReservation' values cannot be greater than the value of the task 'memory'.",
    );
    let fits = RegisterTaskDefinitionRequest { memory: Some("600".into()), ..req };
    ok(&fits);
}

#[test]
fn container_cpu_must_fit_in_task_cpu() {
    let a = ContainerDefinition { cpu: Some(200), ..container("a") };
    let b = ContainerDefinition { cpu: Some(100), ..container("b") };
    let req = RegisterTaskDefinitionRequest { cpu: Some("256".into()), ..request(vec![a, b]) };
    assert_client(&req, "The sum of all container 'cpu' values cannot be greater than the value of the task 'cpu'.");
    let fits = RegisterTaskDefinitionRequest { cpu: Some("512".into()), ..req };
    ok(&fits);
}

// ---------------------------------------------------------------- task cpu and memory strings

#[test]
fn parse_cpu_accepts_units_and_vcpus() {
    let cases = [
        ("256", 256),
        ("1024", 1024),
        ("1 vCPU", 1024),
        ("1vcpu", 1024),
        ("1 VCPU", 1024),
        ("0.25 vCPU", 256),
        ("0.5 vcpu", 512),
        ("2 vCPUs", 2048),
        (" 512 ", 512),
        ("16 vCPU", 16384),
    ];
    for (input, units) in cases {
        assert_eq!(parse_cpu(input), Ok(units), "{input:?}");
    }
}

#[test]
fn parse_cpu_rejects_other_forms_as_invalid_parameter() {
    for input in ["", "abc", "1.5", "-1", "1 cpu", "0.1 vCPU", "1.vcpu", ".5 vcpu", "vcpu", "99999999999", "1e3"] {
        let e = parse_cpu(input).unwrap_err();
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::InvalidParameter, "Invalid 'cpu' setting for task."));
    }
}

#[test]
fn parse_memory_accepts_mib_and_gb() {
    let cases = [
        ("512", 512),
        ("1 GB", 1024),
        ("2GB", 2048),
        ("0.5GB", 512),
        ("1.5 gb", 1536),
        ("1GiB", 1024),
        ("1024 MiB", 1024),
        ("300MB", 300),
        ("30 GB", 30720),
    ];
    for (input, mib) in cases {
        assert_eq!(parse_memory(input), Ok(mib), "{input:?}");
    }
}

#[test]
fn parse_memory_rejects_other_forms_as_invalid_parameter() {
    for input in ["", "GB", "1 TB", "1.5", "0.0001GB", "-512", "512 MiB MiB", "2 G"] {
        let e = parse_memory(input).unwrap_err();
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::InvalidParameter, "Invalid 'memory' setting for task."));
    }
}

#[test]
fn task_size_strings_are_stored_normalized() {
    let req = RegisterTaskDefinitionRequest {
        cpu: Some("1 vCPU".into()),
        memory: Some("2 GB".into()),
        ..request(vec![container("app")])
    };
    let td = ok(&req);
    assert_eq!((td.cpu.as_deref(), td.memory.as_deref()), (Some("1024"), Some("2048")));
}

#[test]
fn unparseable_task_size_is_invalid_parameter() {
    let req = RegisterTaskDefinitionRequest { cpu: Some("lots".into()), ..request(vec![container("app")]) };
    assert_eq!(err(&req).kind, ErrorKind::InvalidParameter);
    let req = RegisterTaskDefinitionRequest { memory: Some("".into()), ..request(vec![container("app")]) };
    assert_eq!(err(&req), ApiError::invalid("Invalid 'memory' setting for task."));
}

#[test]
fn task_size_out_of_range_is_a_client_exception() {
    for cpu in ["64", "0", "200000"] {
        let req = RegisterTaskDefinitionRequest { cpu: Some(cpu.into()), ..request(vec![container("app")]) };
        assert_client_mentions(&req, &["Invalid 'cpu' setting for task."]);
    }
    let req = RegisterTaskDefinitionRequest { cpu: Some("128".into()), ..request(vec![container("app")]) };
    ok(&req);
    let req = RegisterTaskDefinitionRequest { memory: Some("0".into()), ..request(vec![container("app")]) };
    assert_client(&req, "Invalid 'memory' setting for task.");
}

#[test]
fn fargate_table() {
    let allowed = [
        (256, 512),
        (256, 2048),
        (512, 1024),
        (512, 4096),
        (1024, 2048),
        (1024, 8192),
        (2048, 4096),
        (2048, 16384),
        (4096, 8192),
        (4096, 30720),
        (8192, 16384),
        (8192, 61440),
        (16384, 32768),
        (16384, 122_880),
    ];
    for (cpu, memory) in allowed {
        assert!(fargate_memory_allowed(cpu, memory), "{cpu}/{memory}");
    }
    let refused = [
        (256, 256),
        (256, 1536),
        (256, 3072),
        (512, 512),
        (512, 5120),
        (1024, 1024),
        (2048, 4608),
        (4096, 31744),
        (8192, 18432),
        (16384, 36864),
        (128, 512),
        (32768, 65536),
    ];
    for (cpu, memory) in refused {
        assert!(!fargate_memory_allowed(cpu, memory), "{cpu}/{memory}");
    }
}

// ---------------------------------------------------------------- Fargate

#[test]
fn a_fargate_definition_builds() {
    let td = ok(&fargate(vec![ContainerDefinition { memory: None, ..container("app") }]));
    assert_eq!(
        td.compatibilities,
        Some(vec![Compatibility::Ec2, Compatibility::ManagedInstances, Compatibility::Fargate])
    );
    assert_eq!(td.requires_compatibilities, Some(vec![Compatibility::Fargate]));
}

#[test]
fn fargate_requires_awsvpc() {
    for mode in [None, Some(NetworkMode::Bridge), Some(NetworkMode::Host)] {
        let req = RegisterTaskDefinitionRequest { network_mode: mode, ..fargate(vec![container("app")]) };
        assert_client(&req, "Fargate only supports network mode \u{2018}awsvpc\u{2019}.");
    }
}

#[test]
fn fargate_requires_task_cpu_and_memory() {
    let req = RegisterTaskDefinitionRequest { cpu: None, ..fargate(vec![container("app")]) };
    assert_client(&req, "Fargate requires that 'cpu' be defined at the task level.");
    let req = RegisterTaskDefinitionRequest { memory: None, ..fargate(vec![container("app")]) };
    assert_client(&req, "Fargate requires that 'memory' be defined at the task level.");
}

#[test]
fn fargate_size_must_be_in_the_table() {
    let req = RegisterTaskDefinitionRequest { memory: Some("4096".into()), ..fargate(vec![container("app")]) };
    assert_client(
        &req,
        "No Fargate configuration exists for given values: 256 CPU, 4096 memory. See the Amazon ECS documentation for the valid values.",
    );
    let req = RegisterTaskDefinitionRequest {
        cpu: Some("1 vCPU".into()),
        memory: Some("3GB".into()),
        ..fargate(vec![container("app")])
    };
    ok(&req);
}

#[test]
fn fargate_windows_needs_a_whole_vcpu() {
    let windows = RuntimePlatform {
        operating_system_family: Some(OSFamily::WindowsServer2022Core),
        cpu_architecture: Some(CPUArchitecture::X8664),
    };
    let req = RegisterTaskDefinitionRequest {
        cpu: Some("512".into()),
        memory: Some("1024".into()),
        runtime_platform: Some(windows.clone()),
        ..fargate(vec![container("app")])
    };
    assert_client_mentions(&req, &["No Fargate configuration exists", "512 CPU, 1024 memory"]);
    let req = RegisterTaskDefinitionRequest { cpu: Some("1024".into()), memory: Some("2048".into()), ..req };
    ok(&req);
}

#[test]
fn fargate_needs_an_execution_role_for_ecr_and_awslogs() {
    let ecr = ContainerDefinition { image: Some(ECR_IMAGE.into()), ..container("app") };
    let req = RegisterTaskDefinitionRequest { execution_role_arn: None, ..fargate(vec![ecr.clone()]) };
    assert_client(&req, "Fargate requires task definition to have execution role ARN to support ECR images.");
    ok(&fargate(vec![ecr]));

    let logs = ContainerDefinition {
        log_configuration: Some(awslogs(&[("awslogs-group", "/ecs/web"), ("awslogs-region", "us-east-1")])),
        ..container("app")
    };
    let req = RegisterTaskDefinitionRequest { execution_role_arn: Some(String::new()), ..fargate(vec![logs]) };
    assert_client(&req, "Fargate requires task definition to have execution role ARN to support log driver awslogs.");
}

#[test]
fn fargate_refuses_host_features() {
    let privileged = ContainerDefinition { privileged: Some(true), ..container("app") };
    assert_client(&fargate(vec![privileged]), "Fargate compatible task definitions do not support privileged");
    let dns = ContainerDefinition { dns_servers: Some(vec!["10.0.0.2".into()]), ..container("app") };
    assert_client(&fargate(vec![dns]), "Fargate compatible task definitions do not support dnsServers");
    let empty_lists = ContainerDefinition {
        dns_servers: Some(vec![]),
        links: Some(vec![]),
        extra_hosts: Some(vec![]),
        privileged: Some(false),
        ..container("app")
    };
    ok(&fargate(vec![empty_lists]));

    let host_volume = Volume {
        name: Some("data".into()),
        host: Some(HostVolumeProperties { source_path: Some("/srv".into()) }),
        ..Default::default()
    };
    let req = RegisterTaskDefinitionRequest { volumes: Some(vec![host_volume]), ..fargate(vec![container("app")]) };
    assert_client(&req, "Fargate compatible task definitions do not support sourcePath");
    let bind_mount =
        Volume { name: Some("scratch".into()), host: Some(HostVolumeProperties::default()), ..Default::default() };
    let req = RegisterTaskDefinitionRequest { volumes: Some(vec![bind_mount]), ..fargate(vec![container("app")]) };
    ok(&req);

    let req = RegisterTaskDefinitionRequest { ipc_mode: Some(IpcMode::Task), ..fargate(vec![container("app")]) };
    assert_client(&req, "Tasks using the Fargate launch type do not support ipcMode.");
    let req = RegisterTaskDefinitionRequest { pid_mode: Some(PidMode::Host), ..fargate(vec![container("app")]) };
    assert_client_mentions(&req, &["pidMode 'host'"]);
    let req = RegisterTaskDefinitionRequest { pid_mode: Some(PidMode::Task), ..fargate(vec![container("app")]) };
    ok(&req);
}

#[test]
fn fargate_allows_only_sys_ptrace() {
    let with_caps = |caps: &[&str]| ContainerDefinition {
        linux_parameters: Some(LinuxParameters {
            capabilities: Some(KernelCapabilities {
                add: Some(caps.iter().map(|c| c.to_string()).collect()),
                drop: None,
            }),
            ..Default::default()
        }),
        ..container("app")
    };
    ok(&fargate(vec![with_caps(&["SYS_PTRACE"])]));
    assert_client_mentions(&fargate(vec![with_caps(&["NET_ADMIN"])]), &["SYS_PTRACE"]);
    let shm = ContainerDefinition {
        linux_parameters: Some(LinuxParameters { shared_memory_size: Some(64), ..Default::default() }),
        ..container("app")
    };
    assert_client(&fargate(vec![shm]), "Fargate compatible task definitions do not support sharedMemorySize");
}

#[test]
fn fargate_stop_timeout_is_at_most_120() {
    let slow = ContainerDefinition { stop_timeout: Some(121), ..container("app") };
    assert_client_mentions(&fargate(vec![slow.clone()]), &["'stopTimeout'", "'app'", "120"]);
    ok(&request(vec![slow]));
}

#[test]
fn container_rules_come_before_fargate_rules() {
    let bare = ContainerDefinition { memory: None, ..container("hello_world") };
    let req = RegisterTaskDefinitionRequest {
        requires_compatibilities: Some(vec![Compatibility::Fargate]),
        ..request(vec![bare])
    };
    assert_client_mentions(&req, &["'hello_world'", "At least one of 'memory' or 'memoryReservation'"]);
}

// ---------------------------------------------------------------- network modes and ports

#[test]
fn awsvpc_host_ports_must_match_container_ports() {
    for (mode, name) in [(NetworkMode::Awsvpc, "awsvpc"), (NetworkMode::Host, "host")] {
        for host_port in [8080, 0] {
            let c = ContainerDefinition { port_mappings: Some(vec![port(80, Some(host_port))]), ..container("web") };
            let req = RegisterTaskDefinitionRequest { network_mode: Some(mode), ..request(vec![c]) };
            assert_client(
                &req,
                &format!("When networkMode={name}, the host ports and container ports in port mappings must match."),
            );
        }
    }
}

#[test]
fn awsvpc_and_host_fill_the_host_port() {
    for mode in [NetworkMode::Awsvpc, NetworkMode::Host] {
        let c =
            ContainerDefinition { port_mappings: Some(vec![port(80, None), port(81, Some(81))]), ..container("web") };
        let td = ok(&RegisterTaskDefinitionRequest { network_mode: Some(mode), ..request(vec![c]) });
        let ports = first_container(&td).port_mappings.clone().unwrap_or_default();
        assert_eq!(ports.iter().map(|p| p.host_port).collect::<Vec<_>>(), vec![Some(80), Some(81)]);
        assert!(ports.iter().all(|p| p.protocol == Some(TransportProtocol::Tcp)));
    }
}

#[test]
fn bridge_host_port_defaults_to_dynamic() {
    let udp = PortMapping { protocol: Some(TransportProtocol::Udp), ..port(53, Some(5353)) };
    let c = ContainerDefinition { port_mappings: Some(vec![port(80, None), udp]), ..container("web") };
    for mode in [None, Some(NetworkMode::Bridge)] {
        let td = ok(&RegisterTaskDefinitionRequest { network_mode: mode, ..request(vec![c.clone()]) });
        let ports = first_container(&td).port_mappings.clone().unwrap_or_default();
        assert_eq!(ports[0], PortMapping { protocol: Some(TransportProtocol::Tcp), ..port(80, Some(0)) });
        assert_eq!((ports[1].host_port, ports[1].protocol), (Some(5353), Some(TransportProtocol::Udp)));
    }
}

#[test]
fn container_port_is_required_and_in_range() {
    for mapping in [PortMapping::default(), port(0, None), port(70000, None)] {
        let c = ContainerDefinition { port_mappings: Some(vec![mapping]), ..container("web") };
        assert_client(&request(vec![c]), "Invalid 'containerPort' setting for container 'web'.");
    }
    let c = ContainerDefinition { port_mappings: Some(vec![port(80, Some(-1))]), ..container("web") };
    assert_client(&request(vec![c]), "Invalid 'hostPort' setting for container 'web'.");
}

#[test]
fn port_ranges_are_checked_and_left_without_host_port() {
    let ranged = |range: &str| PortMapping { container_port_range: Some(range.into()), ..Default::default() };
    let c = ContainerDefinition { port_mappings: Some(vec![ranged("8000-8010")]), ..container("web") };
    let td = ok(&request(vec![c]));
    assert_eq!(first_container(&td).port_mappings.as_ref().map(|p| p[0].host_port), Some(None));
    for bad in ["9-3", "0-10", "8000", "a-b"] {
        let c = ContainerDefinition { port_mappings: Some(vec![ranged(bad)]), ..container("web") };
        assert_client(&request(vec![c]), "Invalid 'containerPortRange' setting for container 'web'.");
    }
    let c = ContainerDefinition { port_mappings: Some(vec![ranged("8000-8010")]), ..container("web") };
    let host = RegisterTaskDefinitionRequest { network_mode: Some(NetworkMode::Host), ..request(vec![c]) };
    assert_client_mentions(&host, &["networkMode=host"]);
}

#[test]
fn network_mode_none_has_no_ports() {
    let c = ContainerDefinition { port_mappings: Some(vec![port(80, None)]), ..container("web") };
    let req = RegisterTaskDefinitionRequest { network_mode: Some(NetworkMode::None), ..request(vec![c]) };
    assert_client(&req, "Port mappings are not supported when networkMode=none.");
}

#[test]
fn links_need_bridge() {
    let linked = ContainerDefinition { links: Some(vec!["db:database".into()]), ..container("web") };
    let req = RegisterTaskDefinitionRequest {
        network_mode: Some(NetworkMode::Awsvpc),
        ..request(vec![linked.clone(), container("db")])
    };
    assert_client(&req, "Links are not supported when networkMode=awsvpc.");
    ok(&request(vec![linked, container("db")]));
}

#[test]
fn hostname_is_not_for_awsvpc() {
    let named = ContainerDefinition { hostname: Some("web1".into()), ..container("web") };
    let req = RegisterTaskDefinitionRequest { network_mode: Some(NetworkMode::Awsvpc), ..request(vec![named.clone()]) };
    assert_client(&req, "hostname is not supported on container when networkMode=awsvpc.");
    ok(&request(vec![named]));
}

// ---------------------------------------------------------------- dependencies

#[test]
fn dependencies_must_name_an_existing_container() {
    let c = ContainerDefinition { depends_on: depends("ghost", ContainerCondition::Start), ..container("app") };
    assert_client(&request(vec![c]), "Cannot depend on container + 'ghost' because it does not exist");
}

#[test]
fn a_container_cannot_depend_on_itself() {
    let c = ContainerDefinition { depends_on: depends("app", ContainerCondition::Start), ..container("app") };
    assert_client(&request(vec![c]), "Container 'app' cannot depend on itself.");
}

#[test]
fn complete_and_success_need_a_non_essential_target() {
    for condition in [ContainerCondition::Complete, ContainerCondition::Success] {
        let app = ContainerDefinition { depends_on: depends("init", condition), ..container("app") };
        assert_client(
            &request(vec![app.clone(), container("init")]),
            "A dependency container with SUCCESS or COMPLETE condition cannot be an essential container",
        );
        let init = ContainerDefinition { essential: Some(false), ..container("init") };
        ok(&request(vec![app, init]));
    }
}

#[test]
fn healthy_needs_a_health_check_on_the_target() {
    let app = ContainerDefinition { depends_on: depends("db", ContainerCondition::Healthy), ..container("app") };
    assert_client_mentions(&request(vec![app.clone(), container("db")]), &["HEALTHY", "'db'"]);
    let db = ContainerDefinition { health_check: Some(health(&["CMD", "true"])), ..container("db") };
    let td = ok(&request(vec![app, db]));
    assert!(attribute_names(&td).contains(&"ecs.capability.container-ordering".to_string()));
}

#[test]
fn dependency_cycles_are_refused() {
    let a = ContainerDefinition { depends_on: depends("b", ContainerCondition::Start), ..container("a") };
    let b = ContainerDefinition { depends_on: depends("c", ContainerCondition::Start), ..container("b") };
    let c = ContainerDefinition { depends_on: depends("a", ContainerCondition::Start), ..container("c") };
    assert_client(&request(vec![a.clone(), b.clone(), c]), "Container dependencies contain a cycle: a -> b -> c -> a.");
    ok(&request(vec![a, b, container("c")]));
}

// ---------------------------------------------------------------- health checks

#[test]
fn health_check_defaults_are_stored() {
    let c = ContainerDefinition { health_check: Some(health(&["CMD-SHELL", "curl -f localhost"])), ..container("web") };
    let td = ok(&request(vec![c]));
    let stored = first_container(&td).health_check.clone().unwrap_or_default();
    assert_eq!(
        (stored.interval, stored.timeout, stored.retries, stored.start_period),
        (Some(30), Some(5), Some(3), None)
    );
    let custom = HealthCheck { interval: Some(10), start_period: Some(0), ..health(&["CMD", "true"]) };
    let c = ContainerDefinition { health_check: Some(custom), ..container("web") };
    let stored = first_container(&ok(&request(vec![c]))).health_check.clone().unwrap_or_default();
    assert_eq!((stored.interval, stored.start_period), (Some(10), Some(0)));
}

#[test]
fn health_check_command_form_is_checked() {
    for command in [&[][..], &["curl -f localhost"], &["CMD"], &["CMD-SHELL"]] {
        let c = ContainerDefinition { health_check: Some(health(command)), ..container("web") };
        assert_client_mentions(&request(vec![c]), &["'healthCheck'", "'web'", "CMD-SHELL"]);
    }
    let c = ContainerDefinition { health_check: Some(health(&["NONE"])), ..container("web") };
    ok(&request(vec![c]));
}

#[test]
fn health_check_ranges_are_checked() {
    let bad = [
        HealthCheck { interval: Some(4), ..health(&["CMD", "true"]) },
        HealthCheck { interval: Some(301), ..health(&["CMD", "true"]) },
        HealthCheck { timeout: Some(1), ..health(&["CMD", "true"]) },
        HealthCheck { timeout: Some(61), ..health(&["CMD", "true"]) },
        HealthCheck { retries: Some(0), ..health(&["CMD", "true"]) },
        HealthCheck { retries: Some(11), ..health(&["CMD", "true"]) },
        HealthCheck { start_period: Some(-1), ..health(&["CMD", "true"]) },
        HealthCheck { start_period: Some(301), ..health(&["CMD", "true"]) },
    ];
    for check in bad {
        let c = ContainerDefinition { health_check: Some(check), ..container("web") };
        assert_client_mentions(&request(vec![c]), &["'healthCheck'", "'web'", "must be between"]);
    }
    let edges = HealthCheck {
        interval: Some(5),
        timeout: Some(60),
        retries: Some(10),
        start_period: Some(300),
        ..health(&["CMD", "true"])
    };
    ok(&request(vec![ContainerDefinition { health_check: Some(edges), ..container("web") }]));
}

// ---------------------------------------------------------------- volumes

fn volume(name: &str) -> Volume {
    Volume { name: Some(name.into()), ..Default::default() }
}

fn mount(source: Option<&str>) -> MountPoint {
    MountPoint { source_volume: source.map(str::to_string), container_path: Some("/data".into()), read_only: None }
}

#[test]
fn mount_points_must_name_a_volume() {
    let c = ContainerDefinition { mount_points: Some(vec![mount(Some("data"))]), ..container("app") };
    assert_client(&request(vec![c.clone()]), "Unknown volume 'data'.");
    let c2 = ContainerDefinition { mount_points: Some(vec![mount(None)]), ..container("app") };
    assert_client(&request(vec![c2]), "Unknown volume 'null'.");
    let td = ok(&RegisterTaskDefinitionRequest { volumes: Some(vec![volume("data")]), ..request(vec![c]) });
    assert_eq!(first_container(&td).mount_points.as_ref().map(|m| m[0].read_only), Some(None));
}

#[test]
fn volume_names_are_unique() {
    let req = RegisterTaskDefinitionRequest {
        volumes: Some(vec![volume("data"), volume("data")]),
        ..request(vec![container("app")])
    };
    assert_client_mentions(&req, &["'data'", "unique"]);
}

#[test]
fn volumes_from_must_name_another_container() {
    let from = |source: &str| ContainerDefinition {
        volumes_from: Some(vec![VolumeFrom { source_container: Some(source.into()), read_only: Some(true) }]),
        ..container("app")
    };
    assert_client(&request(vec![from("ghost")]), "Unknown container 'ghost'.");
    assert_client(&request(vec![from("app")]), "Unknown container 'app'.");
    ok(&request(vec![from("data"), container("data")]));
}

// ---------------------------------------------------------------- roles

#[test]
fn secrets_need_an_execution_role() {
    let secret = Secret {
        name: Some("DB_PASSWORD".into()),
        value_from: Some("arn:aws:ssm:us-east-1:123456789012:parameter/db".into()),
    };
    let c = ContainerDefinition { secrets: Some(vec![secret]), ..container("app") };
    let message = "When you are specifying container secrets, you must also specify a value for 'executionRoleArn'.";
    assert_client(&request(vec![c.clone()]), message);
    assert_client(
        &RegisterTaskDefinitionRequest { execution_role_arn: Some(String::new()), ..request(vec![c.clone()]) },
        message,
    );
    let td = ok(&RegisterTaskDefinitionRequest { execution_role_arn: Some(EXEC_ROLE.into()), ..request(vec![c]) });
    assert!(attribute_names(&td).contains(&"ecs.capability.secrets.ssm.environment-variables".to_string()));
    ok(&request(vec![ContainerDefinition { secrets: Some(vec![]), ..container("app") }]));
}

#[test]
fn registry_credentials_need_an_execution_role() {
    let creds =
        RepositoryCredentials { credentials_parameter: Some("arn:aws:secretsmanager:us-east-1:1:secret:x".into()) };
    let c = ContainerDefinition { repository_credentials: Some(creds), ..container("app") };
    assert_client(
        &request(vec![c]),
        "Private repository authentication requires that the task definition specify a value for executionRoleArn.",
    );
}

#[test]
fn empty_role_arns_are_not_stored() {
    let req = RegisterTaskDefinitionRequest {
        task_role_arn: Some(String::new()),
        execution_role_arn: Some(String::new()),
        ..request(vec![container("app")])
    };
    let td = ok(&req);
    assert_eq!((td.task_role_arn, td.execution_role_arn), (None, None));
}

// ---------------------------------------------------------------- launch types

#[test]
fn compatibilities_follow_the_network_mode() {
    let with_mode = |mode| RegisterTaskDefinitionRequest { network_mode: mode, ..request(vec![container("app")]) };
    let cases = [
        (None, vec![Compatibility::External, Compatibility::Ec2]),
        (Some(NetworkMode::Bridge), vec![Compatibility::External, Compatibility::Ec2]),
        (Some(NetworkMode::Host), vec![Compatibility::External, Compatibility::Ec2, Compatibility::ManagedInstances]),
        (Some(NetworkMode::Awsvpc), vec![Compatibility::Ec2, Compatibility::ManagedInstances]),
    ];
    for (mode, expected) in cases {
        assert_eq!(ok(&with_mode(mode)).compatibilities, Some(expected), "{mode:?}");
    }
}

#[test]
fn a_fargate_sized_awsvpc_definition_is_fargate_compatible_unasked() {
    let req = RegisterTaskDefinitionRequest { requires_compatibilities: None, ..fargate(vec![container("app")]) };
    let td = ok(&req);
    assert_eq!(
        td.compatibilities,
        Some(vec![Compatibility::Ec2, Compatibility::ManagedInstances, Compatibility::Fargate])
    );
    assert_eq!(td.requires_compatibilities, None);
    let big = RegisterTaskDefinitionRequest { memory: Some("717".into()), ..req };
    assert_eq!(ok(&big).compatibilities, Some(vec![Compatibility::Ec2, Compatibility::ManagedInstances]));
}

#[test]
fn required_external_and_managed_instances_check_the_network_mode() {
    let req = RegisterTaskDefinitionRequest {
        network_mode: Some(NetworkMode::Awsvpc),
        requires_compatibilities: Some(vec![Compatibility::External]),
        ..request(vec![container("app")])
    };
    assert_client_mentions(&req, &["EXTERNAL", "awsvpc"]);
    let req = RegisterTaskDefinitionRequest {
        requires_compatibilities: Some(vec![Compatibility::ManagedInstances]),
        ..request(vec![container("app")])
    };
    assert_client_mentions(&req, &["MANAGED_INSTANCES", "bridge"]);
    let req = RegisterTaskDefinitionRequest { network_mode: Some(NetworkMode::Host), ..req };
    ok(&req);
}

#[test]
fn ephemeral_storage_range() {
    for (size, valid) in [(20, false), (21, true), (200, true), (201, false)] {
        let req = RegisterTaskDefinitionRequest {
            ephemeral_storage: Some(EphemeralStorage { size_in_gi_b: Some(size) }),
            ..fargate(vec![container("app")])
        };
        match build(&req, &reg()) {
            Ok(td) => assert!(valid && td.ephemeral_storage == req.ephemeral_storage, "{size}"),
            Err(e) => assert!(!valid && e.message.contains("'ephemeralStorage'"), "{size}: {e}"),
        }
    }
}

// ---------------------------------------------------------------- requiresAttributes

#[test]
fn a_plain_definition_requires_no_attributes() {
    assert_eq!(ok(&request(vec![container("app")])).requires_attributes, None);
}

#[test]
fn attributes_follow_the_features_used() {
    let app = ContainerDefinition {
        image: Some(ECR_IMAGE.into()),
        log_configuration: Some(awslogs(&[("awslogs-group", "/ecs/web"), ("awslogs-region", "us-east-1")])),
        health_check: Some(health(&["CMD", "true"])),
        secrets: Some(vec![Secret {
            name: Some("TOKEN".into()),
            value_from: Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:token".into()),
        }]),
        ..container("app")
    };
    let req = RegisterTaskDefinitionRequest {
        task_role_arn: Some("arn:aws:iam::123456789012:role/app".into()),
        ..fargate(vec![app])
    };
    let names = attribute_names(&ok(&req));
    for expected in [
        "com.amazonaws.ecs.capability.docker-remote-api.1.18",
        "ecs.capability.task-eni",
        "com.amazonaws.ecs.capability.task-iam-role",
        "com.amazonaws.ecs.capability.logging-driver.awslogs",
        "ecs.capability.execution-role-awslogs",
        "com.amazonaws.ecs.capability.docker-remote-api.1.19",
        "com.amazonaws.ecs.capability.ecr-auth",
        "ecs.capability.execution-role-ecr-pull",
        "ecs.capability.container-health-check",
        "com.amazonaws.ecs.capability.docker-remote-api.1.24",
        "ecs.capability.secrets.asm.environment-variables",
    ] {
        assert!(names.contains(&expected.to_string()), "{expected} missing from {names:?}");
    }
    let unique: std::collections::HashSet<_> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "{names:?}");
}

// ---------------------------------------------------------------- the stored shape

#[test]
fn a_minimal_definition_gets_ecs_defaults() {
    let td = ok(&request(vec![container("app")]));
    assert_eq!(td.task_definition_arn.as_deref(), Some(ARN));
    assert_eq!((td.family.as_deref(), td.revision), (Some("web"), Some(3)));
    assert_eq!(td.status, Some(TaskDefinitionStatus::Active));
    assert_eq!((td.registered_at, td.registered_by.as_deref()), (Some(1_700_000_000.25), Some(CALLER)));
    assert_eq!((td.volumes, td.placement_constraints), (Some(vec![]), Some(vec![])));
    assert_eq!((td.network_mode, td.cpu.as_deref(), td.memory.as_deref()), (None, None, None));
    let c = first_container(&ok(&request(vec![container("app")]))).clone();
    assert_eq!((c.cpu, c.essential, c.memory), (Some(0), Some(true), Some(128)));
    assert_eq!(c.port_mappings, Some(vec![]));
    assert_eq!(c.environment, Some(vec![]));
    assert_eq!(c.mount_points, Some(vec![]));
    assert_eq!(c.volumes_from, Some(vec![]));
    assert_eq!(c.system_controls, Some(vec![]));
    assert_eq!((c.links, c.health_check, c.command), (None, None, None));
}

#[test]
fn the_wire_shape_matches_describe_task_definition() {
    let value = serde_json::to_value(ok(&request(vec![container("sleep")]))).unwrap_or_default();
    let expected = json!({
        "taskDefinitionArn": ARN,
        "containerDefinitions": [{
            "name": "sleep", "image": "busybox", "cpu": 0, "memory": 128, "portMappings": [],
            "essential": true, "environment": [], "mountPoints": [], "volumesFrom": [], "systemControls": []
        }],
        "family": "web", "revision": 3, "volumes": [], "status": "ACTIVE", "placementConstraints": [],
        "compatibilities": ["EXTERNAL", "EC2"], "registeredAt": 1_700_000_000.25, "registeredBy": CALLER
    });
    assert_eq!(value, expected);
}

/// A realistic multi-container service, sent as the aws CLI would, round-trips in full.
#[test]
fn a_realistic_definition_round_trips() {
    let app = json!({
        "name": "app",
        "image": ECR_IMAGE,
        "cpu": 512,
        "memoryReservation": 1024,
        "portMappings": [{"containerPort": 8080, "name": "http", "appProtocol": "http"}],
        "entryPoint": ["/bin/app"],
        "command": ["serve", "--port", "8080"],
        "environment": [{"name": "MODE", "value": "prod"}],
        "environmentFiles": [{"value": "arn:aws:s3:::cfg/app.env", "type": "s3"}],
        "secrets": [{"name": "DB", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/db"}],
        "mountPoints": [{"sourceVolume": "assets", "containerPath": "/srv/assets", "readOnly": true},
                        {"sourceVolume": "scratch", "containerPath": "/tmp/scratch"}],
        "dependsOn": [{"containerName": "envoy", "condition": "HEALTHY"},
                      {"containerName": "migrate", "condition": "SUCCESS"}],
        "dockerLabels": {"com.example.team": "shop"},
        "ulimits": [{"name": "nofile", "softLimit": 4096, "hardLimit": 8192}],
        "readonlyRootFilesystem": true,
        "user": "1000:1000",
        "workingDirectory": "/srv",
        "stopTimeout": 30
    });
    let mut app = app;
    app["linuxParameters"] =
        json!({"initProcessEnabled": true, "capabilities": {"add": ["SYS_PTRACE"], "drop": ["ALL"]}});
    app["logConfiguration"] = json!({"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/shop",
        "awslogs-region": "us-east-1", "awslogs-stream-prefix": "app"}});
    app["healthCheck"] = json!({"command": ["CMD-SHELL", "curl -f http://localhost:8080/health || exit 1"],
        "startPeriod": 15});
    let envoy = json!({
        "name": "envoy",
        "image": "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.5.0-prod",
        "memory": 256,
        "essential": true,
        "user": "1337",
        "healthCheck": {"command": ["CMD-SHELL", "curl -s http://localhost:9901/ready"],
            "interval": 5, "timeout": 2, "retries": 3, "startPeriod": 10}
    });
    let migrate =
        json!({"name": "migrate", "image": ECR_IMAGE, "essential": false, "command": ["migrate"], "memory": 128});
    let mut body = json!({
        "family": "shop",
        "taskRoleArn": "arn:aws:iam::123456789012:role/shop",
        "executionRoleArn": EXEC_ROLE,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE", "EC2"],
        "cpu": "1 vCPU",
        "memory": "2GB",
        "pidMode": "task",
        "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "ARM64"},
        "ephemeralStorage": {"sizeInGiB": 30},
        "enableFaultInjection": false,
        "tags": [{"key": "team", "value": "shop"}],
        "containerDefinitions": [app, envoy, migrate]
    });
    body["proxyConfiguration"] = json!({"type": "APPMESH", "containerName": "envoy",
        "properties": [{"name": "AppPorts", "value": "8080"}]});
    body["volumes"] = json!([
        {"name": "scratch", "host": {}},
        {"name": "assets", "efsVolumeConfiguration": {"fileSystemId": "fs-1234", "rootDirectory": "/assets",
            "transitEncryption": "ENABLED"}}
    ]);
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let req: RegisterTaskDefinitionRequest = match crate::protocol::parse_input(&bytes) {
        Ok(req) => req,
        Err(e) => panic!("{e}"),
    };
    let td = ok(&req);
    let value = serde_json::to_value(&td).unwrap_or_default();

    assert_eq!(value["cpu"], "1024");
    assert_eq!(value["memory"], "2048");
    assert_eq!(value["compatibilities"], json!(["EC2", "MANAGED_INSTANCES", "FARGATE"]));
    assert_eq!(value["requiresCompatibilities"], json!(["FARGATE", "EC2"]));
    assert!(value.get("tags").is_none(), "tags are stored apart from the definition");
    for member in [
        "taskRoleArn",
        "executionRoleArn",
        "networkMode",
        "pidMode",
        "runtimePlatform",
        "ephemeralStorage",
        "enableFaultInjection",
        "proxyConfiguration",
        "volumes",
    ] {
        assert_eq!(value[member], body[member], "{member}");
    }

    let app = &value["containerDefinitions"][0];
    let sent = &body["containerDefinitions"][0];
    for member in [
        "image",
        "cpu",
        "memoryReservation",
        "entryPoint",
        "command",
        "environment",
        "environmentFiles",
        "secrets",
        "mountPoints",
        "dependsOn",
        "dockerLabels",
        "ulimits",
        "readonlyRootFilesystem",
        "user",
        "workingDirectory",
        "stopTimeout",
        "linuxParameters",
        "logConfiguration",
    ] {
        assert_eq!(app[member], sent[member], "{member}");
    }
    assert_eq!(
        app["portMappings"],
        json!([{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp", "name": "http", "appProtocol": "http"}])
    );
    assert_eq!(
        app["healthCheck"],
        json!({"command": ["CMD-SHELL", "curl -f http://localhost:8080/health || exit 1"],
               "interval": 30, "timeout": 5, "retries": 3, "startPeriod": 15})
    );
    assert_eq!((app["essential"].clone(), app["volumesFrom"].clone()), (json!(true), json!([])));
    assert_eq!(value["containerDefinitions"][1]["healthCheck"], body["containerDefinitions"][1]["healthCheck"]);
    assert_eq!(value["containerDefinitions"][2]["essential"], json!(false));
    assert_eq!(value["containerDefinitions"][2]["cpu"], json!(0));

    let names = attribute_names(&td);
    for expected in [
        "ecs.capability.efs",
        "ecs.capability.env-files.s3",
        "ecs.capability.container-ordering",
        "ecs.capability.pid-ipc-namespace-sharing",
        "com.amazonaws.ecs.capability.docker-remote-api.1.25",
    ] {
        assert!(names.contains(&expected.to_string()), "{expected} missing from {names:?}");
    }
}

// ---------------------------------------------------------------- properties

fn network_mode() -> impl Strategy<Value = Option<NetworkMode>> {
    prop_oneof![
        Just(None),
        Just(Some(NetworkMode::Bridge)),
        Just(Some(NetworkMode::Host)),
        Just(Some(NetworkMode::Awsvpc)),
        Just(Some(NetworkMode::None)),
    ]
}

fn size_string() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        any::<String>().prop_map(Some),
        "[0-9]{0,12}(\\.[0-9]{0,14})? ?(vcpu|vCPU|vcpus|GB|gb|GiB|MiB|MB|)".prop_map(Some),
    ]
}

fn arbitrary_container() -> impl Strategy<Value = ContainerDefinition> {
    (
        prop_oneof![Just(None), "[a-z]{1,3}".prop_map(Some), any::<String>().prop_map(Some)],
        proptest::option::of(any::<i32>()),
        proptest::option::of(any::<i32>()),
        proptest::collection::vec((proptest::option::of(any::<i32>()), proptest::option::of(any::<i32>())), 0..3),
        proptest::option::of("[a-z]{1,3}"),
    )
        .prop_map(|(name, memory, cpu, ports, depends_on)| ContainerDefinition {
            name,
            image: Some("busybox".into()),
            memory,
            cpu,
            port_mappings: Some(
                ports
                    .into_iter()
                    .map(|(container_port, host_port)| PortMapping { container_port, host_port, ..Default::default() })
                    .collect(),
            ),
            depends_on: depends_on.map(|n| {
                vec![ContainerDependency { container_name: Some(n), condition: Some(ContainerCondition::Start) }]
            }),
            ..Default::default()
        })
}

proptest! {
    #[test]
    fn build_never_panics(
        cpu in size_string(),
        memory in size_string(),
        mode in network_mode(),
        fargate in any::<bool>(),
        containers in proptest::collection::vec(arbitrary_container(), 0..12),
    ) {
        let req = RegisterTaskDefinitionRequest {
            family: Some("prop".into()),
            container_definitions: Some(containers),
            cpu,
            memory,
            network_mode: mode,
            requires_compatibilities: fargate.then(|| vec![Compatibility::Fargate]),
            ..Default::default()
        };
        if let Ok(td) = build(&req, &reg()) {
            let value = serde_json::to_value(&td).unwrap_or(Value::Null);
            prop_assert_eq!(&value["status"], "ACTIVE");
        }
    }

    #[test]
    fn parse_cpu_round_trips_plain_units(units in 0u32..=i32::MAX as u32) {
        prop_assert_eq!(parse_cpu(&units.to_string()), Ok(units));
        prop_assert_eq!(parse_memory(&units.to_string()), Ok(units));
    }

    #[test]
    fn whole_vcpus_and_gigabytes_scale_by_1024(n in 0u32..=1_000_000) {
        prop_assert_eq!(parse_cpu(&format!("{n} vCPU")), Ok(n * 1024));
        prop_assert_eq!(parse_memory(&format!("{n}GB")), Ok(n * 1024));
    }

    #[test]
    fn parsers_never_panic(s in any::<String>()) {
        let _ = parse_cpu(&s);
        let _ = parse_memory(&s);
        let _ = validate_family(&s);
    }
}

fn awslogs(options: &[(&str, &str)]) -> LogConfiguration {
    LogConfiguration {
        log_driver: Some(LogDriver::Awslogs),
        options: Some(options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        secret_options: None,
    }
}

#[test]
fn awslogs_needs_region_and_group() {
    let with = |options: &[(&str, &str)]| RegisterTaskDefinitionRequest {
        container_definitions: Some(vec![ContainerDefinition {
            log_configuration: Some(awslogs(options)),
            ..container("app")
        }]),
        ..request(vec![])
    };
    assert_client(&with(&[]), "Log driver awslogs requires options: awslogs-region, awslogs-group");
    assert_client(&with(&[("awslogs-region", "us-east-1")]), "Log driver awslogs requires options: awslogs-group");
    ok(&with(&[("awslogs-region", "us-east-1"), ("awslogs-group", "/ecs/web")]));
}

#[test]
fn a_host_port_is_published_once_per_protocol() {
    let mapping = |container_port, host_port, protocol| PortMapping {
        container_port: Some(container_port),
        host_port,
        protocol: Some(protocol),
        ..Default::default()
    };
    let two = |a: PortMapping, b: PortMapping, mode| RegisterTaskDefinitionRequest {
        network_mode: mode,
        container_definitions: Some(vec![
            ContainerDefinition { port_mappings: Some(vec![a]), ..container("a") },
            ContainerDefinition { port_mappings: Some(vec![b]), ..container("b") },
        ]),
        ..request(vec![])
    };
    let tcp = TransportProtocol::Tcp;
    assert_client(
        &two(mapping(80, Some(3000), tcp), mapping(81, Some(3000), tcp), None),
        "TCP host port '3000' is mapped multiple times in task.",
    );
    ok(&two(mapping(53, Some(53), tcp), mapping(53, Some(53), TransportProtocol::Udp), None));
    ok(&two(mapping(80, Some(0), tcp), mapping(80, None, tcp), None));
    assert_client(
        &two(mapping(80, None, tcp), mapping(80, None, tcp), Some(NetworkMode::Awsvpc)),
        "TCP host port '80' is mapped multiple times in task.",
    );
}
