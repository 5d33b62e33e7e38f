def test_project_roundtrip(platform):
    admin = platform()
    admin.projects.create("demo")
    assert [p.name for p in admin.projects.list()] == ["demo"]
