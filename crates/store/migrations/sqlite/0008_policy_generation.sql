-- A counter that moves forward with every change to what an access policy is compiled from, in the same
-- transaction as the change, whichever process makes it (the server, or the admin CLI on the same file). A
-- server keeps compiled policies only while the counter still holds the value they were built at.
CREATE TABLE policy_generation (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO policy_generation(id, value) VALUES (1, 0);

-- A gateway's restrictions, root, mappings and account lists
CREATE TRIGGER storage_gateways_insert_policy AFTER INSERT ON storage_gateways
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER storage_gateways_update_policy AFTER UPDATE ON storage_gateways
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER storage_gateways_delete_policy AFTER DELETE ON storage_gateways
    BEGIN UPDATE policy_generation SET value = value + 1; END;

-- Collections and their base paths, sharing restrictions, guest settings
CREATE TRIGGER collections_insert_policy AFTER INSERT ON collections
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER collections_update_policy AFTER UPDATE ON collections
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER collections_delete_policy AFTER DELETE ON collections
    BEGIN UPDATE policy_generation SET value = value + 1; END;

-- Roles (administrators and access managers hold rw on a guest collection)
CREATE TRIGGER roles_insert_policy AFTER INSERT ON roles
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER roles_update_policy AFTER UPDATE ON roles
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER roles_delete_policy AFTER DELETE ON roles
    BEGIN UPDATE policy_generation SET value = value + 1; END;

-- Sharing policies
CREATE TRIGGER sharing_policies_insert_policy AFTER INSERT ON sharing_policies
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER sharing_policies_update_policy AFTER UPDATE ON sharing_policies
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER sharing_policies_delete_policy AFTER DELETE ON sharing_policies
    BEGIN UPDATE policy_generation SET value = value + 1; END;

-- The credential a guest collection acts through
CREATE TRIGGER user_credentials_insert_policy AFTER INSERT ON user_credentials
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER user_credentials_update_policy AFTER UPDATE ON user_credentials
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER user_credentials_delete_policy AFTER DELETE ON user_credentials
    BEGIN UPDATE policy_generation SET value = value + 1; END;

-- Permissions
CREATE TRIGGER acl_rules_insert_policy AFTER INSERT ON acl_rules
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER acl_rules_update_policy AFTER UPDATE ON acl_rules
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER acl_rules_delete_policy AFTER DELETE ON acl_rules
    BEGIN UPDATE policy_generation SET value = value + 1; END;

-- Authentication policies of guest collections
CREATE TRIGGER auth_policies_insert_policy AFTER INSERT ON auth_policies
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER auth_policies_update_policy AFTER UPDATE ON auth_policies
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER auth_policies_delete_policy AFTER DELETE ON auth_policies
    BEGIN UPDATE policy_generation SET value = value + 1; END;

-- A guest collection's creator
CREATE TRIGGER identities_insert_policy AFTER INSERT ON identities
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER identities_update_policy AFTER UPDATE ON identities
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER identities_delete_policy AFTER DELETE ON identities
    BEGIN UPDATE policy_generation SET value = value + 1; END;

-- Applications (a client's identity is its principal)
CREATE TRIGGER clients_insert_policy AFTER INSERT ON clients
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER clients_update_policy AFTER UPDATE ON clients
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER clients_delete_policy AFTER DELETE ON clients
    BEGIN UPDATE policy_generation SET value = value + 1; END;

-- Groups named by roles and permissions
CREATE TRIGGER groups_insert_policy AFTER INSERT ON groups
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER groups_update_policy AFTER UPDATE ON groups
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER groups_delete_policy AFTER DELETE ON groups
    BEGIN UPDATE policy_generation SET value = value + 1; END;

-- Group memberships
CREATE TRIGGER memberships_insert_policy AFTER INSERT ON memberships
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER memberships_update_policy AFTER UPDATE ON memberships
    BEGIN UPDATE policy_generation SET value = value + 1; END;
CREATE TRIGGER memberships_delete_policy AFTER DELETE ON memberships
    BEGIN UPDATE policy_generation SET value = value + 1; END;
