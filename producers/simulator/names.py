"""The names the simulated province gives its agencies, procedures and reasons."""

from __future__ import annotations


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split("|") if name.strip())


DEPARTMENTS = _names("""
    Sở Tư pháp | Sở Tài chính | Sở Xây dựng | Sở Nông nghiệp và Môi trường | Sở Y tế |
    Sở Giáo dục và Đào tạo | Sở Công Thương | Sở Nội vụ | Sở Khoa học và Công nghệ |
    Sở Văn hóa, Thể thao và Du lịch | Sở Dân tộc và Tôn giáo | Sở Ngoại vụ | Công an tỉnh |
    Ban Quản lý các khu công nghiệp tỉnh | Thanh tra tỉnh
""")
COMMUNES = _names("""
    xã Hòa Phú | phường Buôn Ma Thuột | xã Ea Kar | phường Tân An | xã Krông Búk | xã Ea Tu |
    xã Hòa Xuân | phường Tân Lập | xã Cư M'gar | xã Buôn Đôn | xã Ea Súp | xã Krông Pắc |
    xã Ea H'leo | xã Krông Năng | xã M'Drắk | xã Krông Bông | xã Ea Knốp | xã Dliê Ya |
    xã Cư Kuin | xã Lắk | phường Tuy Hòa | phường Sông Cầu | xã Đồng Xuân | xã Sơn Hòa |
    xã Tuy An | xã Phú Hòa | phường Đông Hòa | xã Tây Hòa | xã Sông Hinh | phường Ea Kao |
    xã Hòa Thắng | xã Ea Drăng | phường Thành Nhất | xã Ea Ning
""")
# Procedures whose name says "chứng thực" are the certified-copy ones (criterion 4.6).
PROCEDURES = _names("""
    Đăng ký khai sinh | Đăng ký kết hôn | Đăng ký khai tử |
    Chứng thực bản sao từ bản chính giấy tờ, văn bản |
    Cấp bản sao điện tử có chứng thực từ bản chính |
    Chứng thực chữ ký trong các giấy tờ, văn bản | Cấp phiếu lý lịch tư pháp |
    Cấp giấy phép xây dựng nhà ở riêng lẻ | Đăng ký thành lập hộ kinh doanh |
    Đăng ký thay đổi nội dung đăng ký hộ kinh doanh |
    Cấp giấy chứng nhận quyền sử dụng đất lần đầu |
    Đăng ký biến động đất đai | Cấp giấy phép kinh doanh bán lẻ rượu |
    Cấp giấy phép lao động cho người nước ngoài | Cấp chứng chỉ hành nghề khám bệnh, chữa bệnh |
    Đăng ký thường trú | Xác nhận tình trạng hôn nhân | Trích lục hộ tịch |
    Cấp giấy chứng nhận đủ điều kiện an toàn thực phẩm | Thẩm định thiết kế xây dựng |
    Cấp giấy phép môi trường | Đăng ký hoạt động giáo dục nghề nghiệp |
    Công nhận trường đạt chuẩn quốc gia | Cấp giấy phép hoạt động dược | Hỗ trợ chi phí mai táng |
    Trợ cấp xã hội hằng tháng | Đăng ký nhận nuôi con nuôi | Cấp giấy phép tổ chức lễ hội |
    Đăng ký hoạt động tín ngưỡng | Cấp giấy chứng nhận đăng ký doanh nghiệp |
    Cấp giấy phép khai thác nước mặt | Chuyển mục đích sử dụng đất | Cấp giấy phép quảng cáo |
    Cấp giấy phép vận tải bằng xe ô tô | Đăng ký lại khai sinh | Thay đổi, cải chính hộ tịch |
    Cấp giấy xác nhận kiến thức an toàn thực phẩm | Phê duyệt phương án phòng cháy chữa cháy |
    Cấp chứng chỉ hành nghề dược | Giải quyết chế độ hưu trí
""")
SUPPLEMENT_REASONS = _names("""
    Thiếu bản sao giấy tờ tùy thân | Bản vẽ chưa đúng quy cách | Thiếu xác nhận của địa phương |
    Thông tin trong tờ khai chưa khớp
""")
APOLOGY_REASONS = _names("""
    Hồ sơ cần xác minh thêm với cơ quan liên quan | Chờ ý kiến phối hợp của đơn vị khác |
    Hệ thống liên thông gặp sự cố
""")
LATE_REASONS = _names("Chờ kết quả xác minh | Quá tải hồ sơ | Chờ ý kiến của cơ quan cấp trên")
# Units inside an agency that process dossiers (the handovers' ``to_unit`` is ``agency/unit``).
DEPARTMENT_UNITS = _names("""
    phong-hanh-chinh-tong-hop | phong-nghiep-vu | phong-kinh-te | phong-quan-ly-chuyen-nganh |
    phong-ke-hoach-tai-chinh | phong-phap-che
""")
COMMUNE_UNITS = _names("""
    tu-phap-ho-tich | dia-chinh-xay-dung | van-hoa-xa-hoi | tai-chinh-ke-toan
""")
LEADERSHIP_UNIT = "lanh-dao"  # the agency's leaders, who approve
